#include "core/function_stats.h"

#include <algorithm>

namespace vigil {

FunctionTable functionCounts(const Profile& profile) {
    FunctionTable table;
    const auto& nodes = profile.nodes();
    const auto& frames = profile.frames();
    // Depth-first from the root, keeping the functions on the current path so
    // that a recursive function's total counts each sample once.
    struct Visit {
        NodeId node;
        size_t pathSize;
    };
    std::vector<Visit> pending;
    std::vector<FunctionKey> path;
    for (NodeId child = nodes[Profile::kRoot].firstChild; child; child = nodes[child].nextSibling) {
        pending.push_back({child, 0});
    }
    while (!pending.empty()) {
        Visit visit = pending.back();
        pending.pop_back();
        path.resize(visit.pathSize);
        const ProfileNode& node = nodes[visit.node];
        const ProfileFrame& frame = frames[node.frame];
        if (frame.kind == FrameKind::kPython) {
            FunctionKey key{frame.name, frame.file};
            FunctionCounts& counts = table[key];
            counts.own += node.self;
            if (std::find(path.begin(), path.end(), key) == path.end()) counts.total += node.total;
            path.push_back(key);
        }
        for (NodeId child = node.firstChild; child; child = nodes[child].nextSibling) {
            pending.push_back({child, path.size()});
        }
    }
    return table;
}

}  // namespace vigil
