// The in-memory profile every output format is written from.
//
// Samples are aggregated as they come into a stack trie (a node per distinct
// call path, with self and total counts), so a long recording at a steady
// rate uses memory proportional to the number of distinct stacks, not to the
// number of samples. Frames are interned (function, file, line) triples.
// Formats that need a timeline (chrome) ask for one; only then are samples
// also kept in order, as (time, leaf node, thread) triples.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/strings.h"

namespace vigil {

using FrameId = uint32_t;
using NodeId = uint32_t;

enum class FrameKind : uint8_t {
    kPython,   // a Python function at a line
    kThread,   // a synthetic root: one thread (with --threads)
    kProcess,  // a synthetic root: one process (with --subprocesses)
};

struct ProfileFrame {
    StringId name = 0;  // qualified name, or the label of a thread or process
    StringId file = 0;
    int line = 0;
    FrameKind kind = FrameKind::kPython;

    bool operator==(const ProfileFrame&) const = default;
};

struct ProfileFrameHash {
    size_t operator()(const ProfileFrame& frame) const {
        uint64_t key = (uint64_t{frame.name} * 0x9E3779B97F4A7C15ull) ^
                       (uint64_t{frame.file} << 32) ^ (static_cast<uint64_t>(frame.line) << 2) ^
                       static_cast<uint64_t>(frame.kind);
        return std::hash<uint64_t>()(key);
    }
};

struct ProfileNode {
    FrameId frame = 0;  // meaningless for the root
    NodeId parent = 0;
    NodeId firstChild = 0;   // 0: none (the root is never a child)
    NodeId nextSibling = 0;  // 0: none
    uint64_t self = 0;       // samples whose innermost frame is this node
    uint64_t total = 0;      // samples passing through this node
};

struct TimedSample {
    int64_t timeNs = 0;  // since the start of the recording
    NodeId leaf = 0;
    uint32_t track = 0;  // index in Profile::tracks(): one per thread of each process
};

// What a recording says about itself, printed at the end and written by the
// formats that have room for it.
struct RecordingStats {
    double durationSeconds = 0;
    double requestedHz = 0;
    uint64_t ticks = 0;           // sampling rounds run
    uint64_t lateTicks = 0;       // rounds that started after their deadline
    uint64_t missedTicks = 0;     // rounds skipped because the sampler fell behind
    uint64_t samples = 0;         // stacks kept
    uint64_t invalidSamples = 0;  // walks thrown away as torn
    uint64_t idleSamples = 0;     // stacks of idle threads left out
    double achievedHz() const { return durationSeconds > 0 ? ticks / durationSeconds : 0; }
    double invalidPercent() const {
        uint64_t walked = samples + invalidSamples + idleSamples;
        return walked ? 100.0 * invalidSamples / walked : 0;
    }
};

class Profile {
  public:
    static constexpr NodeId kRoot = 0;

    explicit Profile(StringTable& strings, bool keepTimeline = false);

    FrameId frame(StringId name, StringId file, int line, FrameKind kind = FrameKind::kPython);
    // Adds one sample of a call path given outermost first.
    NodeId add(std::span<const FrameId> outermostFirst, uint64_t count = 1);

    // The same in two steps, for callers that remember node paths between
    // samples (the sampler): the node of frame under parent (created if new),
    // then one count along a path of nodes (outermost first, root excluded).
    NodeId childOf(NodeId parent, FrameId frame);
    void countPath(std::span<const NodeId> path, uint64_t count = 1);
    // Remembers a sample ending at leaf in time order (timeline formats).
    void recordTime(NodeId leaf, int64_t timeNs, uint32_t track);
    // A track is a named timeline lane: "MainThread (4242)", in process 4242.
    uint32_t track(const std::string& label, int64_t pid, int64_t tid);

    const std::vector<ProfileFrame>& frames() const { return frames_; }
    const std::vector<ProfileNode>& nodes() const { return nodes_; }
    const std::vector<TimedSample>& timeline() const { return timeline_; }
    struct Track {
        std::string label;
        int64_t pid;
        int64_t tid;
    };
    const std::vector<Track>& tracks() const { return tracks_; }
    const StringTable& strings() const { return strings_; }
    StringTable& strings() { return strings_; }
    uint64_t totalSamples() const { return nodes_[kRoot].total; }

    // The call path of a node, outermost first.
    void pathTo(NodeId node, std::vector<FrameId>& out) const;
    // "Class.method (file.py:12)", or the label of a thread or process.
    std::string frameLabel(FrameId frame) const;

    RecordingStats stats;

  private:
    StringTable& strings_;
    bool keepTimeline_;
    std::vector<ProfileFrame> frames_;
    std::unordered_map<ProfileFrame, FrameId, ProfileFrameHash> frameIds_;
    std::vector<ProfileNode> nodes_;
    std::unordered_map<uint64_t, NodeId> children_;  // (parent, frame) -> node
    std::vector<TimedSample> timeline_;
    std::vector<Track> tracks_;
};

}  // namespace vigil
