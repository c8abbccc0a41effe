// The reader's side of a block: its payload back into events, each with
// the stack depth, code and line the header's stack and the deltas give,
// and a time interpolated between the block's time points.
#pragma once

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

}  // namespace vigil::trace
