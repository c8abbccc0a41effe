// The pprof writer. How the Profile model maps onto profile.proto, and why:
//
// - Values: sample_type is [samples/count, wall/nanoseconds]. The event count
//   goes first because pprof's convention puts it at index 0; wall time goes
//   last because a reader with no default_sample_type shows the last one, and
//   time is what people read a wall-clock profile for.
// - Frames: one Function per distinct (name, file), one Location per distinct
//   Python frame (its function at one line), so pprof can aggregate both by
//   function and by line.
// - Thread and process roots become string labels ("thread", "process") on
//   each sample instead of frames. A root frame named after a thread would
//   show as a fake function holding 100% in every "top" listing, and would
//   split each flame graph by thread with no way to merge them. As labels,
//   viewers merge threads by default and split on request: Pyroscope turns
//   sample labels into series labels (filter or group by thread), and
//   `go tool pprof -tagroot=thread` puts them back as root frames.
// - Samples: one per trie node with self samples, its location ids leaf first
//   as pprof requires.
#include "output/pprof_writer.h"

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/errors.h"
#include "output/profile.pb.h"

namespace vigil {
namespace {

namespace pb = perftools::profiles;

// Every location belongs to this one mapping. It tells readers the frames are
// already symbolized; the bracketed name marks it as no file on disk, so no
// tool tries to find a binary to symbolize.
constexpr uint64_t kMappingId = 1;
constexpr const char* kMappingName = "[python]";

// pprof refers to every string by its index in one table whose entry 0 is "".
class PprofStrings {
  public:
    explicit PprofStrings(pb::Profile& out) : out_(out) { intern(""); }

    int64_t intern(std::string_view text) {
        auto [entry, inserted] =
            ids_.try_emplace(std::string(text), static_cast<int64_t>(ids_.size()));
        if (inserted) out_.add_string_table(entry->first);
        return entry->second;
    }

  private:
    pb::Profile& out_;
    std::unordered_map<std::string, int64_t> ids_;
};

int64_t periodNanos(double requestedHz) {
    return requestedHz > 0 ? std::llround(1e9 / requestedHz) : 0;
}

class PprofBuilder {
  public:
    PprofBuilder(const Profile& profile, pb::Profile& out)
        : profile_(profile),
          out_(out),
          strings_(out),
          periodNs_(periodNanos(profile.stats.requestedHz)),
          locationIds_(profile.frames().size(), 0) {}

    void build() {
        describeValues();
        describeRecording();
        addMapping();
        addSamples();
    }

  private:
    void setValueType(pb::ValueType* valueType, std::string_view type, std::string_view unit) {
        valueType->set_type(strings_.intern(type));
        valueType->set_unit(strings_.intern(unit));
    }

    void describeValues() {
        setValueType(out_.add_sample_type(), "samples", "count");
        setValueType(out_.add_sample_type(), "wall", "nanoseconds");
        setValueType(out_.mutable_period_type(), "wall", "nanoseconds");
        out_.set_period(periodNs_);
    }

    // time_nanos stays 0: the model has no wall-clock start time yet.
    void describeRecording() {
        const RecordingStats& stats = profile_.stats;
        out_.set_duration_nanos(std::llround(stats.durationSeconds * 1e9));
        uint64_t walked = stats.samples + stats.invalidSamples + stats.idleSamples;
        out_.add_comment(strings_.intern("vigil"));
        out_.add_comment(
            strings_.intern(fmt::format("invalid samples: {:.2f}% ({} of {} walks)",
                                        stats.invalidPercent(), stats.invalidSamples, walked)));
    }

    void addMapping() {
        pb::Mapping* mapping = out_.add_mapping();
        mapping->set_id(kMappingId);
        mapping->set_filename(strings_.intern(kMappingName));
        mapping->set_has_functions(true);
        mapping->set_has_filenames(true);
        mapping->set_has_line_numbers(true);
    }

    // Node order is insertion order, so the output is deterministic. The root
    // is included: its self count is samples that had no frame at all.
    void addSamples() {
        const std::vector<ProfileNode>& nodes = profile_.nodes();
        for (NodeId node = Profile::kRoot; node < nodes.size(); ++node) {
            if (nodes[node].self > 0) addSample(node, nodes[node].self);
        }
    }

    void addSample(NodeId leaf, uint64_t count) {
        profile_.pathTo(leaf, path_);
        pb::Sample* sample = out_.add_sample();
        // pathTo gives outermost first; pprof wants the leaf at index 0.
        for (auto it = path_.rbegin(); it != path_.rend(); ++it) {
            const ProfileFrame& frame = profile_.frames()[*it];
            if (frame.kind == FrameKind::kPython) {
                sample->add_location_id(locationOf(*it));
            } else {
                addRootLabel(sample, frame);
            }
        }
        int64_t samples = static_cast<int64_t>(count);
        sample->add_value(samples);
        sample->add_value(samples * periodNs_);
    }

    void addRootLabel(pb::Sample* sample, const ProfileFrame& frame) {
        pb::Label* label = sample->add_label();
        label->set_key(strings_.intern(frame.kind == FrameKind::kThread ? "thread" : "process"));
        label->set_str(strings_.intern(profile_.strings().get(frame.name)));
    }

    uint64_t locationOf(FrameId frameId) {
        uint64_t& id = locationIds_[frameId];
        if (id != 0) return id;
        const ProfileFrame& frame = profile_.frames()[frameId];
        pb::Location* location = out_.add_location();
        id = static_cast<uint64_t>(out_.location_size());  // ids start at 1: 0 means none
        location->set_id(id);
        location->set_mapping_id(kMappingId);
        pb::Line* line = location->add_line();
        line->set_function_id(functionOf(frame));
        line->set_line(frame.line);
        return id;
    }

    uint64_t functionOf(const ProfileFrame& frame) {
        uint64_t key = (uint64_t{frame.name} << 32) | frame.file;
        auto [entry, inserted] = functionIds_.try_emplace(key, 0);
        if (!inserted) return entry->second;
        pb::Function* function = out_.add_function();
        entry->second = static_cast<uint64_t>(out_.function_size());
        function->set_id(entry->second);
        function->set_name(strings_.intern(profile_.strings().get(frame.name)));
        function->set_filename(strings_.intern(profile_.strings().get(frame.file)));
        return entry->second;
    }

    const Profile& profile_;
    pb::Profile& out_;
    PprofStrings strings_;
    int64_t periodNs_;
    std::vector<uint64_t> locationIds_;                   // by FrameId; 0: not added yet
    std::unordered_map<uint64_t, uint64_t> functionIds_;  // (name, file) -> id
    std::vector<FrameId> path_;                           // reused between samples
};

// One gzip member, as pprof requires on disk. zlib writes a zero timestamp in
// the header, so the same profile always gives the same bytes.
std::string gzip(const std::string& raw) {
    z_stream stream{};
    // 15 + 16: the largest window, with a gzip wrapper instead of a zlib one.
    if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        throw OutputError("cannot start gzip compression of the pprof profile");
    }
    // An output buffer of deflateBound bytes lets one Z_FINISH call do it all.
    // protobuf refuses to encode more than 2 GiB, so the sizes fit in a uInt.
    std::string compressed(deflateBound(&stream, static_cast<uLong>(raw.size())), '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
    stream.avail_in = static_cast<uInt>(raw.size());
    stream.next_out = reinterpret_cast<Bytef*>(compressed.data());
    stream.avail_out = static_cast<uInt>(compressed.size());
    int status = deflate(&stream, Z_FINISH);
    compressed.resize(stream.total_out);
    deflateEnd(&stream);
    if (status != Z_STREAM_END) throw OutputError("cannot gzip-compress the pprof profile");
    return compressed;
}

}  // namespace

void writePprof(const Profile& profile, std::ostream& out) {
    pb::Profile message;
    PprofBuilder(profile, message).build();
    std::string encoded;
    if (!message.SerializeToString(&encoded)) {
        throw OutputError("cannot encode the pprof profile");
    }
    std::string compressed = gzip(encoded);
    out.write(compressed.data(), static_cast<std::streamsize>(compressed.size()));
    out.flush();
    if (!out) throw OutputError("cannot write the pprof profile");
}

}  // namespace vigil
