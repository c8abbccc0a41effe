#include "output/profile_writers.h"

#include <map>
#include <vector>

#include <nlohmann/json.hpp>

namespace vigil {
namespace {

using nlohmann::json;

// Folded stacks use ';' between frames, a space before the count and a
// line per stack: a ';' in a label becomes ',', a control character a space.
std::string foldedLabel(const Profile& profile, FrameId frame) {
    std::string label = profile.frameLabel(frame);
    for (char& c : label) {
        if (c == ';')
            c = ',';
        else if (static_cast<unsigned char>(c) < 0x20)
            c = ' ';
    }
    return label;
}

// Calls visit(node, path) for every node with self samples, path outermost first.
template <typename Visit>
void forEachLeaf(const Profile& profile, Visit&& visit) {
    std::vector<FrameId> path;
    const auto& nodes = profile.nodes();
    for (NodeId node = 1; node < nodes.size(); ++node) {
        if (nodes[node].self == 0) continue;
        profile.pathTo(node, path);
        visit(nodes[node], path);
    }
}

size_t syntheticPrefix(const Profile& profile, const std::vector<FrameId>& path) {
    size_t prefix = 0;
    while (prefix < path.size() && profile.frames()[path[prefix]].kind != FrameKind::kPython)
        ++prefix;
    return prefix;
}

json speedscopeFrames(const Profile& profile) {
    json frames = json::array();
    for (const ProfileFrame& frame : profile.frames()) {
        json entry = {{"name", profile.strings().get(frame.name)}};
        if (frame.kind == FrameKind::kPython) {
            entry["file"] = profile.strings().get(frame.file);
            entry["line"] = frame.line;
        }
        frames.push_back(std::move(entry));
    }
    return frames;
}

}  // namespace

void writeFolded(const Profile& profile, std::ostream& out) {
    forEachLeaf(profile, [&](const ProfileNode& node, const std::vector<FrameId>& path) {
        for (size_t i = 0; i < path.size(); ++i) {
            if (i) out << ';';
            out << foldedLabel(profile, path[i]);
        }
        out << ' ' << node.self << '\n';
    });
}

void writeSpeedscope(const Profile& profile, const ProfileMetadata& metadata, std::ostream& out) {
    struct Group {
        std::string name;
        json samples = json::array();
        json weights = json::array();
        uint64_t total = 0;
    };
    std::map<std::vector<FrameId>, Group> groups;  // keyed by the synthetic roots
    forEachLeaf(profile, [&](const ProfileNode& node, const std::vector<FrameId>& path) {
        size_t prefix = syntheticPrefix(profile, path);
        std::vector<FrameId> roots(path.begin(), path.begin() + prefix);
        Group& group = groups[roots];
        if (group.name.empty()) {
            group.name = metadata.name;
            for (FrameId root : roots) group.name += " / " + profile.frameLabel(root);
        }
        group.samples.push_back(std::vector<FrameId>(path.begin() + prefix, path.end()));
        group.weights.push_back(node.self);
        group.total += node.self;
    });
    json profiles = json::array();
    for (auto& [roots, group] : groups) {
        profiles.push_back({{"type", "sampled"},
                            {"name", group.name},
                            {"unit", "none"},
                            {"startValue", 0},
                            {"endValue", group.total},
                            {"samples", std::move(group.samples)},
                            {"weights", std::move(group.weights)}});
    }
    json document = {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
                     {"shared", {{"frames", speedscopeFrames(profile)}}},
                     {"profiles", std::move(profiles)},
                     {"name", metadata.name},
                     {"activeProfileIndex", 0},
                     {"exporter", metadata.exporter}};
    out << document.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
}

namespace {

// Turns one track's samples into nested spans: a frame stays open while
// consecutive samples keep it on their path.
class SpanBuilder {
  public:
    SpanBuilder(const Profile& profile, const Profile::Track& track, json& events)
        : profile_(profile), track_(track), events_(events) {}

    void sample(int64_t timeNs, NodeId leaf) {
        profile_.pathTo(leaf, path_);
        size_t prefix = syntheticPrefix(profile_, path_);
        path_.erase(path_.begin(), path_.begin() + prefix);
        size_t common = 0;
        while (common < open_.size() && common < path_.size() &&
               open_[common].frame == path_[common])
            ++common;
        closeDownTo(common, timeNs);
        for (size_t depth = common; depth < path_.size(); ++depth)
            open_.push_back({path_[depth], timeNs, 0});
        for (Open& frame : open_) ++frame.samples;
    }
    void finish(int64_t timeNs) { closeDownTo(0, timeNs); }

  private:
    struct Open {
        FrameId frame;
        int64_t startNs;
        uint64_t samples;
    };

    void closeDownTo(size_t depth, int64_t timeNs) {
        while (open_.size() > depth) {
            const Open& frame = open_.back();
            const ProfileFrame& info = profile_.frames()[frame.frame];
            events_.push_back({{"name", profile_.strings().get(info.name)},
                               {"cat", "python"},
                               {"ph", "X"},
                               {"ts", frame.startNs / 1000.0},
                               {"dur", (timeNs - frame.startNs) / 1000.0},
                               {"pid", track_.pid},
                               {"tid", track_.tid},
                               {"args",
                                {{"file", profile_.strings().get(info.file)},
                                 {"line", info.line},
                                 {"samples", frame.samples},
                                 {"depth", open_.size() - 1}}}});
            open_.pop_back();
        }
    }

    const Profile& profile_;
    const Profile::Track& track_;
    json& events_;
    std::vector<FrameId> path_;
    std::vector<Open> open_;
};

void addTrackNames(const Profile& profile, json& events) {
    std::map<int64_t, bool> processes;
    for (const Profile::Track& track : profile.tracks()) {
        events.push_back({{"ph", "M"},
                          {"name", "thread_name"},
                          {"pid", track.pid},
                          {"tid", track.tid},
                          {"args", {{"name", track.label}}}});
        if (!processes[track.pid]) {
            processes[track.pid] = true;
            events.push_back({{"ph", "M"},
                              {"name", "process_name"},
                              {"pid", track.pid},
                              {"args", {{"name", "python " + std::to_string(track.pid)}}}});
        }
    }
}

}  // namespace

void writeChromeTrace(const Profile& profile, const ProfileMetadata& metadata, std::ostream& out) {
    json events = json::array();
    addTrackNames(profile, events);
    int64_t periodNs =
        profile.stats.requestedHz > 0 ? static_cast<int64_t>(1e9 / profile.stats.requestedHz) : 0;
    std::vector<SpanBuilder> builders;
    std::vector<int64_t> lastTime(profile.tracks().size(), 0);
    for (const Profile::Track& track : profile.tracks())
        builders.emplace_back(profile, track, events);
    for (const TimedSample& sample : profile.timeline()) {
        builders[sample.track].sample(sample.timeNs, sample.leaf);
        lastTime[sample.track] = sample.timeNs;
    }
    for (size_t track = 0; track < builders.size(); ++track)
        builders[track].finish(lastTime[track] + periodNs);
    json document = {{"traceEvents", std::move(events)},
                     {"displayTimeUnit", "ms"},
                     {"otherData",
                      {{"name", metadata.name},
                       {"exporter", metadata.exporter},
                       {"samples", profile.timeline().size()},
                       {"invalid_samples", profile.stats.invalidSamples},
                       {"rate_hz", profile.stats.requestedHz}}}};
    out << document.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
}

}  // namespace vigil
