// The events of a trace as a replay walks them: one thread at a time,
// forward or backward, or every thread merged in time order, decoding
// only the blocks it reaches (each decodes alone from the stack in its
// header) and keeping the last few decoded.
//
// The order of the whole trace: by estimated time, then by thread serial
// for equal times; each thread's own order (its blocks by number, their
// events in turn) is kept, since a thread's times never go back.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "trace/format.h"
#include "trace/trace_reader.h"

namespace vigil {

// One event of one thread.
struct ReplayPlace {
    uint32_t thread = 0;  // its serial
    uint32_t block = 0;   // in that thread's blocks()
    uint32_t event = 0;   // in the block
    bool operator==(const ReplayPlace&) const = default;
};

struct ReplayThread {
    uint32_t serial = 0;
    int32_t nativeId = 0;
    std::vector<const TraceBlock*> blocks;  // in write order, which is time order
};

enum class Direction { kForward, kBackward };

class ReplayTimeline {
  public:
    explicit ReplayTimeline(const TraceReader& reader);

    // After the reader's reload(): takes the new blocks. Places stay valid:
    // the reader only ever adds blocks after those it had.
    void refresh();

    const TraceReader& reader() const { return reader_; }
    // By serial.
    const std::map<uint32_t, ReplayThread>& threads() const { return threads_; }
    const ReplayThread& thread(uint32_t serial) const { return threads_.at(serial); }

    // A copy: a reference into the decoded blocks would not outlive the
    // next block decoded.
    TraceEvent event(const ReplayPlace& place);
    // The decoded block of a place; a walk holds it while it goes through
    // it, however many other blocks are decoded meanwhile.
    using Events = std::shared_ptr<const std::vector<TraceEvent>>;
    Events events(const ReplayPlace& place);

    // The thread's next (previous) event whose depth is at most maxDepth;
    // blocks whose minimum depth is deeper are skipped without decoding.
    std::optional<ReplayPlace> step(const ReplayPlace& from, Direction direction,
                                    uint32_t maxDepth = UINT32_MAX);
    // The thread's first event at or after `ns` (forward), or its last at
    // or before it (backward).
    std::optional<ReplayPlace> at(uint32_t thread, int64_t ns, Direction direction);
    // The first (last) event of the whole trace.
    std::optional<ReplayPlace> edge(Direction direction);

    // The frames at the event, innermost first, the root left out: for a
    // call the new frame, for a return the frame returning; each frame at
    // the line it was last seen at.
    std::vector<TraceFrame> stack(const ReplayPlace& place);

    // Whether `a` comes before `b` in the order of the whole trace.
    bool before(const ReplayPlace& a, const ReplayPlace& b);

  private:
    std::optional<ReplayPlace> firstFrom(uint32_t thread, int64_t ns);
    std::optional<ReplayPlace> lastUpTo(uint32_t thread, int64_t ns);

    const TraceReader& reader_;
    std::map<uint32_t, ReplayThread> threads_;
    // Decoded blocks by number; the oldest go first past kCachedBlocks.
    static constexpr size_t kCachedBlocks = 16;
    std::unordered_map<uint64_t, Events> decoded_;
    std::deque<uint64_t> decodedOrder_;
};

// Every thread's events in the order of the whole trace, from a place on
// (that place left out) or from an end of the trace, forward or backward.
class MergedWalk {
  public:
    MergedWalk(ReplayTimeline& timeline, std::optional<ReplayPlace> from, Direction direction);
    std::optional<ReplayPlace> next();
    // The event of the place next() returned last: a scan through millions
    // of events reads each without a lookup.
    const TraceEvent& event() const { return event_; }

  private:
    // A thread's next place, with its time and block at hand: the heap
    // compares times without a lookup, and a walk through many threads
    // decodes each block once.
    struct Head {
        int64_t ns;
        ReplayPlace place;
        ReplayTimeline::Events block;
    };
    void push(std::optional<ReplayPlace> place, ReplayTimeline::Events block = nullptr);
    bool later(const Head& a, const Head& b) const;  // heap order

    ReplayTimeline& timeline_;
    Direction direction_;
    std::vector<Head> heads_;  // a heap
    TraceEvent event_;
};

}  // namespace vigil
