// The reader's side of a block: its payload back into events, each with
// the stack depth, code and line the header's stack and the deltas give,
// and a time interpolated between the block's time points.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "trace/format.h"

namespace vigil::trace {

// Throws FormatError unless the compressed payload matches the header's
// size and checksum.
void checkPayload(const BlockHeader& header, std::string_view compressed);

// The events of one block, in order. Times: an event with its own stamp
// has that time (precise); the others are placed linearly, by their rank,
// between the time points around them (a mark counts as half a rank
// before the next event); events before the first time point or after the
// last take its time. Time points are made non-decreasing first. Throws
// FormatError for a payload that does not decode to what the header says.
std::vector<TraceEvent> decodeBlock(const BlockHeader& header, std::string_view compressed);
// Where an event's true time lies: between the two time points around it
// (both 0 for a precise event, whose time is its own). Its estimated time
// is in there too, so it is off by at most toNs - fromNs.
struct TimeBracket {
    int64_t fromNs = 0;
    int64_t toNs = 0;
    int64_t width() const { return toNs - fromNs; }
    bool operator==(const TimeBracket&) const = default;
};

// The same into `events` (replaced; its capacity is reused), and, when
// `brackets` is given, each event's bracket (replaced).
void decodeBlock(const BlockHeader& header, std::string_view compressed,
                 std::vector<TraceEvent>& events, std::vector<TimeBracket>* brackets);

}  // namespace vigil::trace
