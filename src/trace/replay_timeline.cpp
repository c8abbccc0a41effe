#include "trace/replay_timeline.h"

#include <algorithm>
#include <limits>
#include <tuple>

namespace vigil {

ReplayTimeline::ReplayTimeline(const TraceReader& reader) : reader_(reader) {
    refresh();
}

void ReplayTimeline::refresh() {
    // The reader re-sorts (and may move) its blocks on a reload: every
    // pointer is taken again, in the same order as before for the blocks
    // already known, so places keep pointing at the same events.
    for (auto& [serial, thread] : threads_) thread.blocks.clear();
    for (const TraceBlock& block : reader_.blocks()) {
        ReplayThread& thread = threads_[block.threadSerial];
        thread.serial = block.threadSerial;
        thread.nativeId = block.thread;
        thread.blocks.push_back(&block);
    }
    for (auto& [serial, thread] : threads_) {
        std::sort(thread.blocks.begin(), thread.blocks.end(),
                  [](const TraceBlock* a, const TraceBlock* b) { return a->number < b->number; });
    }
}

ReplayTimeline::Events ReplayTimeline::events(const ReplayPlace& place) {
    const TraceBlock& block = *thread(place.thread).blocks.at(place.block);
    auto found = decoded_.find(block.number);
    if (found != decoded_.end()) return found->second;
    if (decodedOrder_.size() >= kCachedBlocks) {
        decoded_.erase(decodedOrder_.front());
        decodedOrder_.pop_front();
    }
    auto events = std::make_shared<const std::vector<TraceEvent>>(reader_.decode(block));
    decoded_.emplace(block.number, events);
    decodedOrder_.push_back(block.number);
    return events;
}

TraceEvent ReplayTimeline::event(const ReplayPlace& place) {
    return events(place)->at(place.event);
}

// The events after `from` in its block, then whole blocks, skipping those
// that never come up to maxDepth.
std::optional<ReplayPlace> ReplayTimeline::step(const ReplayPlace& from, Direction direction,
                                                uint32_t maxDepth) {
    const std::vector<const TraceBlock*>& blocks = thread(from.thread).blocks;
    bool forward = direction == Direction::kForward;
    ReplayPlace place = from;
    Events block = events(place);
    while (true) {
        if (forward ? place.event + 1 < block->size() : place.event > 0) {
            place.event += forward ? 1 : -1;
            if ((*block)[place.event].depth <= maxDepth) return place;
            continue;
        }
        do {
            if (forward ? place.block + 1 >= blocks.size() : place.block == 0) return std::nullopt;
            place.block += forward ? 1 : -1;
        } while (blocks[place.block]->minDepth > maxDepth || blocks[place.block]->events == 0);
        block = events(place);
        // One before the first (after the last) event: the loop steps onto it.
        place.event = forward ? static_cast<uint32_t>(-1) : static_cast<uint32_t>(block->size());
    }
}

std::optional<ReplayPlace> ReplayTimeline::at(uint32_t serial, int64_t ns, Direction direction) {
    return direction == Direction::kForward ? firstFrom(serial, ns) : lastUpTo(serial, ns);
}

// A thread's blocks follow each other in time: the first block that ends
// at or after ns holds the event, or the event is the next block's first.
std::optional<ReplayPlace> ReplayTimeline::firstFrom(uint32_t serial, int64_t ns) {
    const std::vector<const TraceBlock*>& blocks = thread(serial).blocks;
    auto block = std::partition_point(blocks.begin(), blocks.end(),
                                      [ns](const TraceBlock* b) { return b->lastNs < ns; });
    if (block == blocks.end()) return std::nullopt;
    ReplayPlace place{serial, static_cast<uint32_t>(block - blocks.begin()), 0};
    Events events = this->events(place);
    auto found = std::partition_point(events->begin(), events->end(),
                                      [ns](const TraceEvent& e) { return e.estimatedTimeNs < ns; });
    if (found == events->begin() && found == events->end()) return std::nullopt;
    place.event = static_cast<uint32_t>(found - events->begin());
    // Every event of the block is before ns (its last time point came later).
    if (found == events->end())
        return step({serial, place.block, place.event - 1}, Direction::kForward);
    return place;
}

// Likewise backward: the last block that starts at or before ns.
std::optional<ReplayPlace> ReplayTimeline::lastUpTo(uint32_t serial, int64_t ns) {
    const std::vector<const TraceBlock*>& blocks = thread(serial).blocks;
    auto block = std::partition_point(blocks.begin(), blocks.end(),
                                      [ns](const TraceBlock* b) { return b->firstNs <= ns; });
    if (block == blocks.begin()) return std::nullopt;
    ReplayPlace place{serial, static_cast<uint32_t>(block - blocks.begin() - 1), 0};
    Events events = this->events(place);
    auto found = std::partition_point(events->begin(), events->end(), [ns](const TraceEvent& e) {
        return e.estimatedTimeNs <= ns;
    });
    if (found != events->begin()) {
        place.event = static_cast<uint32_t>(found - events->begin() - 1);
        return place;
    }
    // Every event of the block is after ns (its first time point came earlier).
    return events->empty() ? std::nullopt : step(place, Direction::kBackward);
}

std::optional<ReplayPlace> ReplayTimeline::edge(Direction direction) {
    return MergedWalk(*this, std::nullopt, direction).next();
}

std::vector<TraceFrame> ReplayTimeline::stack(const ReplayPlace& place) {
    std::vector<TraceFrame> stack = thread(place.thread).blocks.at(place.block)->stack;
    Events events = this->events(place);
    for (uint32_t i = 0; i <= place.event; ++i) {
        const TraceEvent& event = (*events)[i];
        if (event.kind == TraceEventKind::kCall) {
            if (stack.size() < trace::kMaxStackFrames) stack.push_back({event.code, event.line});
        } else if (event.kind == TraceEventKind::kReturn) {
            // The returning frame is still there at its own event.
            if (i < place.event && stack.size() > 1) stack.pop_back();
        } else {
            stack.back().line = event.line;
        }
    }
    return {stack.rbegin(), stack.rend() - 1};
}

bool ReplayTimeline::before(const ReplayPlace& a, const ReplayPlace& b) {
    if (a.thread == b.thread) return std::tie(a.block, a.event) < std::tie(b.block, b.event);
    return std::pair(event(a).estimatedTimeNs, a.thread) <
           std::pair(event(b).estimatedTimeNs, b.thread);
}

MergedWalk::MergedWalk(ReplayTimeline& timeline, std::optional<ReplayPlace> from,
                       Direction direction)
    : timeline_(timeline), direction_(direction) {
    bool forward = direction == Direction::kForward;
    int64_t fromNs = from      ? timeline.event(*from).estimatedTimeNs
                     : forward ? std::numeric_limits<int64_t>::min()
                               : std::numeric_limits<int64_t>::max();
    for (const auto& [serial, thread] : timeline.threads()) {
        if (thread.blocks.empty()) continue;
        if (from && serial == from->thread) {
            push(timeline.step(*from, direction));
            continue;
        }
        std::optional<ReplayPlace> place = timeline.at(serial, fromNs, direction);
        // At the same time as `from`, threads of lower serials come before it.
        while (from && place && timeline.event(*place).estimatedTimeNs == fromNs &&
               (forward ? serial < from->thread : serial > from->thread))
            place = timeline.step(*place, direction);
        push(place);
    }
}

void MergedWalk::push(std::optional<ReplayPlace> place, ReplayTimeline::Events block) {
    if (!place) return;
    if (!block) block = timeline_.events(*place);
    heads_.push_back({(*block)[place->event].estimatedTimeNs, *place, std::move(block)});
    std::push_heap(heads_.begin(), heads_.end(),
                   [this](const Head& a, const Head& b) { return later(a, b); });
}

bool MergedWalk::later(const Head& a, const Head& b) const {
    auto key = [](const Head& head) { return std::pair(head.ns, head.place.thread); };
    return direction_ == Direction::kForward ? key(b) < key(a) : key(a) < key(b);
}

std::optional<ReplayPlace> MergedWalk::next() {
    if (heads_.empty()) return std::nullopt;
    auto order = [this](const Head& a, const Head& b) { return later(a, b); };
    Head& first = heads_.front();
    ReplayPlace place = first.place;
    event_ = (*first.block)[place.event];
    bool forward = direction_ == Direction::kForward;
    if (forward ? place.event + 1 < first.block->size() : place.event > 0) {
        // Within its block the head moves on in place, with no lookup; the
        // heap is put back in order only when there are other threads.
        first.place.event += forward ? 1 : -1;
        first.ns = (*first.block)[first.place.event].estimatedTimeNs;
        if (heads_.size() > 1) {
            std::pop_heap(heads_.begin(), heads_.end(), order);
            std::push_heap(heads_.begin(), heads_.end(), order);
        }
        return place;
    }
    std::pop_heap(heads_.begin(), heads_.end(), order);
    heads_.pop_back();
    push(timeline_.step(place, direction_));
    return place;
}

}  // namespace vigil
