#include "core/profile.h"

#include <algorithm>

#include <fmt/format.h>

namespace vigil {
namespace {

uint64_t pairKey(uint32_t a, uint32_t b) {
    return (uint64_t{a} << 32) | b;
}

}  // namespace

Profile::Profile(StringTable& strings, bool keepTimeline)
    : strings_(strings), keepTimeline_(keepTimeline) {
    nodes_.push_back({});  // the root
}

FrameId Profile::frame(StringId name, StringId file, int line, FrameKind kind) {
    ProfileFrame key{name, file, line, kind};
    auto [entry, inserted] = frameIds_.try_emplace(key, static_cast<FrameId>(frames_.size()));
    if (inserted) frames_.push_back(key);
    return entry->second;
}

NodeId Profile::childOf(NodeId parent, FrameId frame) {
    auto [entry, inserted] = children_.try_emplace(pairKey(parent, frame), 0);
    if (!inserted) return entry->second;
    NodeId id = static_cast<NodeId>(nodes_.size());
    ProfileNode node;
    node.frame = frame;
    node.parent = parent;
    node.nextSibling = nodes_[parent].firstChild;
    nodes_.push_back(node);
    nodes_[parent].firstChild = id;
    entry->second = id;
    return id;
}

NodeId Profile::add(std::span<const FrameId> outermostFirst, uint64_t count) {
    NodeId node = kRoot;
    nodes_[kRoot].total += count;
    for (FrameId frame : outermostFirst) {
        node = childOf(node, frame);
        nodes_[node].total += count;
    }
    nodes_[node].self += count;
    return node;
}

void Profile::countPath(std::span<const NodeId> path, uint64_t count) {
    nodes_[kRoot].total += count;
    for (NodeId node : path) nodes_[node].total += count;
    nodes_[path.empty() ? kRoot : path.back()].self += count;
}

void Profile::recordTime(NodeId leaf, int64_t timeNs, uint32_t track) {
    if (keepTimeline_) timeline_.push_back({timeNs, leaf, track});
}

uint32_t Profile::track(const std::string& label, int64_t pid, int64_t tid) {
    for (size_t i = 0; i < tracks_.size(); ++i) {
        if (tracks_[i].pid == pid && tracks_[i].tid == tid) {
            tracks_[i].label = label;
            return static_cast<uint32_t>(i);
        }
    }
    tracks_.push_back({label, pid, tid});
    return static_cast<uint32_t>(tracks_.size() - 1);
}

void Profile::pathTo(NodeId node, std::vector<FrameId>& out) const {
    out.clear();
    for (; node != kRoot; node = nodes_[node].parent) out.push_back(nodes_[node].frame);
    std::reverse(out.begin(), out.end());
}

std::string Profile::frameLabel(FrameId id) const {
    const ProfileFrame& frame = frames_[id];
    if (frame.kind != FrameKind::kPython) return strings_.get(frame.name);
    return fmt::format("{} ({}:{})", strings_.get(frame.name), strings_.get(frame.file),
                       frame.line);
}

}  // namespace vigil
