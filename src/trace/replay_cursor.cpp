#include "trace/replay_cursor.h"

#include <cstdlib>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {

bool functionMatches(std::string_view qualname, std::string_view name) {
    return qualname.ends_with(name) &&
           (qualname.size() == name.size() || qualname[qualname.size() - name.size() - 1] == '.');
}

ReplayCursor::ReplayCursor(ReplayTimeline& timeline) : timeline_(timeline) {
    std::optional<ReplayPlace> first = timeline.edge(Direction::kForward);
    if (!first) throw BadFileError("the trace holds no events");
    place_ = *first;
}

void ReplayCursor::moveTo(const ReplayPlace& place) {
    place_ = place;
    frame_ = 0;
}

bool ReplayCursor::step(Direction direction) {
    std::optional<ReplayPlace> place = timeline_.step(place_, direction);
    if (place) moveTo(*place);
    return place.has_value();
}

bool ReplayCursor::next(Direction direction) {
    TraceEvent event = this->event();
    // The depth of the frame that goes on: forward past a return, its
    // caller's; backward past a call, the caller's too.
    TraceEventKind leaves =
        direction == Direction::kForward ? TraceEventKind::kReturn : TraceEventKind::kCall;
    uint32_t depth = event.kind == leaves && event.depth > 0 ? event.depth - 1 : event.depth;
    std::optional<ReplayPlace> place = timeline_.step(place_, direction, depth);
    if (place) moveTo(*place);
    return place.has_value();
}

// The first place in the order of the whole trace, from the current one
// on, whose event hit(event) takes.
template <typename Hit>
std::optional<ReplayPlace> ReplayCursor::search(Direction direction, Hit hit) {
    MergedWalk walk(timeline_, place_, direction);
    for (std::optional<ReplayPlace> place = walk.next(); place; place = walk.next())
        if (hit(walk.event())) return place;
    return std::nullopt;
}

const Breakpoint* ReplayCursor::resume(Direction direction, const Breakpoints& breakpoints) {
    const Breakpoint* hit = nullptr;
    std::optional<ReplayPlace> place;
    // Without breakpoints, straight to the end: no need to read the trace.
    if (!breakpoints.list().empty()) {
        place = search(direction, [&](const TraceEvent& event) {
            hit = breakpoints.hitBy(event, timeline_.reader());
            return hit != nullptr;
        });
    }
    if (!place)
        place = timeline_.edge(direction == Direction::kForward ? Direction::kBackward
                                                                : Direction::kForward);
    moveTo(*place);
    return hit;
}

bool ReplayCursor::up() {
    if (frame_ + 1 >= stack().size()) return false;
    ++frame_;
    return true;
}

bool ReplayCursor::down() {
    if (frame_ == 0) return false;
    --frame_;
    return true;
}

void ReplayCursor::jump(int64_t ns) {
    std::optional<ReplayPlace> place = timeline_.at(place_.thread, ns, Direction::kForward);
    if (!place) place = earliestFrom(ns);
    if (!place) place = timeline_.edge(Direction::kBackward);
    moveTo(*place);
}

// The first event of any thread at or after `ns`.
std::optional<ReplayPlace> ReplayCursor::earliestFrom(int64_t ns) {
    std::optional<ReplayPlace> earliest;
    for (const auto& [serial, thread] : timeline_.threads()) {
        std::optional<ReplayPlace> place = timeline_.at(serial, ns, Direction::kForward);
        if (place && (!earliest || timeline_.before(*place, *earliest))) earliest = place;
    }
    return earliest;
}

// The thread's event nearest `ns`, the earlier one on a tie.
std::optional<ReplayPlace> ReplayCursor::nearest(uint32_t thread, int64_t ns) {
    std::optional<ReplayPlace> before = timeline_.at(thread, ns, Direction::kBackward);
    std::optional<ReplayPlace> after = timeline_.at(thread, ns, Direction::kForward);
    if (!before || !after) return before ? before : after;
    int64_t behind = ns - timeline_.event(*before).estimatedTimeNs;
    int64_t ahead = timeline_.event(*after).estimatedTimeNs - ns;
    return ahead < behind ? after : before;
}

bool ReplayCursor::switchThread(std::optional<int32_t> nativeId) {
    const auto& threads = timeline_.threads();
    std::optional<uint32_t> target;
    if (nativeId) {
        for (const auto& [serial, thread] : threads)
            if (thread.nativeId == *nativeId && serial != place_.thread && !target) target = serial;
        bool current = timeline_.thread(place_.thread).nativeId == *nativeId;
        if (!target && !current)
            throw UsageError(fmt::format("the trace holds no thread {}", *nativeId));
    } else {
        auto following = threads.upper_bound(place_.thread);
        target = following != threads.end() ? following->first : threads.begin()->first;
    }
    if (!target || *target == place_.thread) return false;
    std::optional<ReplayPlace> place = nearest(*target, event().estimatedTimeNs);
    if (place) moveTo(*place);
    return place.has_value();
}

bool ReplayCursor::find(std::string_view name, Direction direction) {
    std::optional<ReplayPlace> place = search(direction, [&](const TraceEvent& event) {
        if (event.kind != TraceEventKind::kCall) return false;
        const TraceCode* code = timeline_.reader().code(event.code);
        return code && functionMatches(code->qualname, name);
    });
    if (place) moveTo(*place);
    return place.has_value();
}

}  // namespace vigil
