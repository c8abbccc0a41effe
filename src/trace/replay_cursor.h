// Where a replay stands, and the debugger's moves: step into and over
// calls, run to a breakpoint, go up and down the stack, jump in time,
// change thread, find a call; forward and backward alike. Knows nothing of
// terminals: `vigil replay` drives it from keys or from command lines.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "trace/breakpoints.h"
#include "trace/replay_timeline.h"

namespace vigil {

class ReplayCursor {
  public:
    // At the first event of the trace. Throws BadFileError when it has none.
    explicit ReplayCursor(ReplayTimeline& timeline);

    const ReplayPlace& place() const { return place_; }
    TraceEvent event() { return timeline_.event(place_); }
    // The frames at the event, innermost first (empty outside recorded code).
    std::vector<TraceFrame> stack() { return timeline_.stack(place_); }
    // The frame shown, in stack(): 0 is the innermost; u and d move it.
    size_t frame() const { return frame_; }

    // The moves return false, and stay, when there is nowhere to go.
    // s, S: the thread's next (previous) event, into calls.
    bool step(Direction direction);
    // n, N: the thread's next (previous) event in this frame or a caller,
    // over calls: forward from a return, the caller's next event; backward
    // from a call, the event that made it.
    bool next(Direction direction);
    // c, C: the next (previous) event of any thread that a breakpoint hits,
    // and that breakpoint; when none does: nullptr, at the last (first)
    // event of the trace.
    const Breakpoint* resume(Direction direction, const Breakpoints& breakpoints);
    // u, d: the caller's frame, the callee's.
    bool up();
    bool down();
    // j: the thread's first event at or after `ns`; when it has none, the
    // first of any thread; when there is none either, the last event.
    void jump(int64_t ns);
    // t: another thread — the next by serial, or the one with that native
    // id — at its event nearest the current time. Throws UsageError for an
    // id the trace does not hold.
    bool switchThread(std::optional<int32_t> nativeId = std::nullopt);
    // f: the next (previous) call, in any thread, of a function named by
    // its qualified name or its last part (run matches Worker.run).
    bool find(std::string_view name, Direction direction);

  private:
    void moveTo(const ReplayPlace& place);
    template <typename Hit>
    std::optional<ReplayPlace> search(Direction direction, Hit hit);
    std::optional<ReplayPlace> nearest(uint32_t thread, int64_t ns);
    std::optional<ReplayPlace> earliestFrom(int64_t ns);

    ReplayTimeline& timeline_;
    ReplayPlace place_;
    size_t frame_ = 0;
};

// Whether `qualname` is `name` or ends with "." + `name`.
bool functionMatches(std::string_view qualname, std::string_view name);

}  // namespace vigil
