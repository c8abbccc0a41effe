// The pprof writer, read back three ways: with the classes generated from our
// own profile.proto; with `protoc --decode_raw`, which knows no schema, so the
// field numbers are checked against upstream's meaning rather than against
// our copy; and with `go tool pprof` (Debian's golang-go) when it is there.
#include "output/pprof_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/errors.h"
#include "output/profile.pb.h"

#ifndef VIGIL_PROTOC
#error "VIGIL_PROTOC must name the protoc executable"
#endif

namespace vigil {
namespace {

namespace fs = std::filesystem;
namespace pb = perftools::profiles;

constexpr int64_t kPeriodNs = 10'000'000;  // 100 Hz

std::string gunzip(const std::string& compressed) {
    z_stream stream{};
    // 15 + 16: accept only a gzip wrapper, as pprof readers do.
    EXPECT_EQ(inflateInit2(&stream, 15 + 16), Z_OK);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    stream.avail_in = static_cast<uInt>(compressed.size());
    std::string raw;
    char chunk[4096];
    int status = Z_OK;
    while (status == Z_OK) {
        stream.next_out = reinterpret_cast<Bytef*>(chunk);
        stream.avail_out = sizeof chunk;
        status = inflate(&stream, Z_NO_FLUSH);
        raw.append(chunk, sizeof chunk - stream.avail_out);
    }
    inflateEnd(&stream);
    EXPECT_EQ(status, Z_STREAM_END) << "not one complete gzip member";
    return raw;
}

std::string readFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A scratch file of this test process: ctest may run several at once.
fs::path scratchFile(const std::string& name) {
    return fs::path(::testing::TempDir()) /
           ("vigil_pprof_" + std::to_string(getpid()) + "_" + name);
}

// Runs a shell command line; true when it exits 0.
bool run(const std::string& command) {
    return std::system(command.c_str()) == 0;
}

// One sample as a person reads it: frames leaf first as "name:line", labels.
struct ReadSample {
    std::vector<std::string> stack;
    std::map<std::string, std::string> labels;
    std::vector<int64_t> values;
};

class PprofReader {
  public:
    explicit PprofReader(const pb::Profile& profile) : profile_(profile) {
        for (const pb::Function& function : profile.function())
            functions_[function.id()] = &function;
        for (const pb::Location& location : profile.location())
            locations_[location.id()] = &location;
    }

    const std::string& text(int64_t index) const {
        static const std::string kBadIndex = "<bad string index>";
        bool valid = index >= 0 && index < profile_.string_table_size();
        return valid ? profile_.string_table(static_cast<int>(index)) : kBadIndex;
    }

    std::string frame(uint64_t locationId) const {
        const pb::Line& line = locations_.at(locationId)->line(0);
        return text(functions_.at(line.function_id())->name()) + ":" + std::to_string(line.line());
    }

    ReadSample sample(const pb::Sample& sample) const {
        ReadSample read;
        for (uint64_t id : sample.location_id()) read.stack.push_back(frame(id));
        for (const pb::Label& label : sample.label())
            read.labels[text(label.key())] = text(label.str());
        read.values.assign(sample.value().begin(), sample.value().end());
        return read;
    }

    // "thread | leaf caller ..." -> values, for comparing whole profiles.
    std::map<std::string, std::vector<int64_t>> samplesByStack() const {
        std::map<std::string, std::vector<int64_t>> byStack;
        for (const pb::Sample& raw : profile_.sample()) {
            ReadSample read = sample(raw);
            std::string key = read.labels["thread"] + " |";
            for (const std::string& frame : read.stack) key += " " + frame;
            byStack[key] = read.values;
        }
        return byStack;
    }

  private:
    const pb::Profile& profile_;
    std::map<uint64_t, const pb::Function*> functions_;
    std::map<uint64_t, const pb::Location*> locations_;
};

// A process with two threads; "work" is sampled at two lines, and main has
// self samples of its own, so not every sample ends at a trie leaf.
class PprofTest : public ::testing::Test {
  public:
    // What the profile below holds, as PprofReader::samplesByStack puts it.
    static std::map<std::string, std::vector<int64_t>> expectedSamples() {
        return {
            {"MainThread (100) | work:20 main:10", {3, 3 * kPeriodNs}},
            {"MainThread (100) | work:21 main:10", {2, 2 * kPeriodNs}},
            {"MainThread (100) | main:10", {1, 1 * kPeriodNs}},
            {"Worker (101) | helper:5", {4, 4 * kPeriodNs}},
        };
    }

  protected:
    PprofTest() : profile_(strings_) {
        FrameId process = root("python app.py (42)", FrameKind::kProcess);
        FrameId mainThread = root("MainThread (100)", FrameKind::kThread);
        FrameId worker = root("Worker (101)", FrameKind::kThread);
        FrameId main10 = python("main", "app.py", 10);
        FrameId work20 = python("work", "app.py", 20);
        FrameId work21 = python("work", "app.py", 21);
        FrameId helper5 = python("helper", "lib.py", 5);
        add({process, mainThread, main10, work20}, 3);
        add({process, mainThread, main10, work21}, 2);
        add({process, mainThread, main10}, 1);
        add({process, worker, helper5}, 4);
        profile_.stats.requestedHz = 100;
        profile_.stats.durationSeconds = 1.5;
        profile_.stats.samples = 10;
        profile_.stats.invalidSamples = 2;
    }

    FrameId python(const char* name, const char* file, int line) {
        return profile_.frame(strings_.intern(name), strings_.intern(file), line);
    }
    FrameId root(const char* label, FrameKind kind) {
        return profile_.frame(strings_.intern(label), 0, 0, kind);
    }
    void add(std::vector<FrameId> outermostFirst, uint64_t count) {
        profile_.add(outermostFirst, count);
    }

    std::string written() const {
        std::ostringstream out;
        writePprof(profile_, out);
        return out.str();
    }
    pb::Profile parsed() const {
        pb::Profile profile;
        EXPECT_TRUE(profile.ParseFromString(gunzip(written())));
        return profile;
    }
    // The profile as a file, for the external tools.
    fs::path writtenFile(const std::string& name) const {
        fs::path path = scratchFile(name);
        std::ofstream(path, std::ios::binary) << written();
        return path;
    }

    StringTable strings_;
    Profile profile_;
};

TEST_F(PprofTest, IsOneGzipMember) {
    std::string bytes = written();
    ASSERT_GE(bytes.size(), 2u);
    EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 0x1f);
    EXPECT_EQ(static_cast<uint8_t>(bytes[1]), 0x8b);
    EXPECT_FALSE(gunzip(bytes).empty());
}

TEST_F(PprofTest, SameProfileGivesSameBytes) {
    EXPECT_EQ(written(), written());
}

TEST_F(PprofTest, DescribesValuesAndRecording) {
    pb::Profile profile = parsed();
    PprofReader reader(profile);
    ASSERT_GT(profile.string_table_size(), 0);
    EXPECT_EQ(profile.string_table(0), "");
    ASSERT_EQ(profile.sample_type_size(), 2);
    EXPECT_EQ(reader.text(profile.sample_type(0).type()), "samples");
    EXPECT_EQ(reader.text(profile.sample_type(0).unit()), "count");
    EXPECT_EQ(reader.text(profile.sample_type(1).type()), "wall");
    EXPECT_EQ(reader.text(profile.sample_type(1).unit()), "nanoseconds");
    EXPECT_EQ(reader.text(profile.period_type().type()), "wall");
    EXPECT_EQ(reader.text(profile.period_type().unit()), "nanoseconds");
    EXPECT_EQ(profile.period(), kPeriodNs);
    EXPECT_EQ(profile.duration_nanos(), 1'500'000'000);
    EXPECT_EQ(profile.time_nanos(), 0);
    ASSERT_EQ(profile.comment_size(), 2);
    EXPECT_EQ(reader.text(profile.comment(0)), "vigil");
    EXPECT_EQ(reader.text(profile.comment(1)), "invalid samples: 16.67% (2 of 12 walks)");
}

TEST_F(PprofTest, SamplesAreLeafFirstWithCountAndWallTime) {
    pb::Profile profile = parsed();
    EXPECT_EQ(profile.sample_size(), 4);
    EXPECT_EQ(PprofReader(profile).samplesByStack(), expectedSamples());
}

TEST_F(PprofTest, ThreadAndProcessRootsAreLabelsNotFrames) {
    pb::Profile profile = parsed();
    PprofReader reader(profile);
    for (const pb::Sample& sample : profile.sample()) {
        ReadSample read = reader.sample(sample);
        EXPECT_EQ(read.labels["process"], "python app.py (42)");
        EXPECT_TRUE(read.labels["thread"] == "MainThread (100)" ||
                    read.labels["thread"] == "Worker (101)");
        EXPECT_EQ(read.labels.size(), 2u);
    }
    std::set<std::string> roots = {"MainThread (100)", "Worker (101)", "python app.py (42)"};
    for (const pb::Function& function : profile.function()) {
        EXPECT_FALSE(roots.count(reader.text(function.name()))) << "a root became a frame";
    }
}

TEST_F(PprofTest, OneFunctionPerNameAndFileOneLocationPerLine) {
    pb::Profile profile = parsed();
    PprofReader reader(profile);
    std::multiset<std::string> functions;
    for (const pb::Function& function : profile.function()) {
        functions.insert(reader.text(function.name()) + "@" + reader.text(function.filename()));
    }
    EXPECT_EQ(functions,
              (std::multiset<std::string>{"main@app.py", "work@app.py", "helper@lib.py"}));
    std::multiset<std::string> locations;
    for (const pb::Location& location : profile.location()) {
        ASSERT_EQ(location.line_size(), 1);
        locations.insert(reader.frame(location.id()));
    }
    EXPECT_EQ(locations, (std::multiset<std::string>{"main:10", "work:20", "work:21", "helper:5"}));
}

TEST_F(PprofTest, IdsAreNonZeroUniqueAndResolve) {
    pb::Profile profile = parsed();
    ASSERT_EQ(profile.mapping_size(), 1);
    uint64_t mappingId = profile.mapping(0).id();
    EXPECT_NE(mappingId, 0u);
    EXPECT_TRUE(profile.mapping(0).has_functions());
    std::set<uint64_t> functionIds, locationIds;
    for (const pb::Function& function : profile.function()) {
        EXPECT_NE(function.id(), 0u);
        EXPECT_TRUE(functionIds.insert(function.id()).second) << "duplicate function id";
    }
    for (const pb::Location& location : profile.location()) {
        EXPECT_NE(location.id(), 0u);
        EXPECT_TRUE(locationIds.insert(location.id()).second) << "duplicate location id";
        EXPECT_EQ(location.mapping_id(), mappingId);
        for (const pb::Line& line : location.line()) {
            EXPECT_TRUE(functionIds.count(line.function_id()));
        }
    }
    for (const pb::Sample& sample : profile.sample()) {
        for (uint64_t id : sample.location_id()) EXPECT_TRUE(locationIds.count(id));
    }
}

TEST_F(PprofTest, EmptyProfileIsStillValid) {
    StringTable strings;
    Profile empty(strings);
    std::ostringstream out;
    writePprof(empty, out);
    pb::Profile profile;
    ASSERT_TRUE(profile.ParseFromString(gunzip(out.str())));
    EXPECT_EQ(profile.sample_size(), 0);
    EXPECT_EQ(profile.period(), 0) << "no requested rate, no period";
    EXPECT_EQ(profile.string_table(0), "");
}

TEST_F(PprofTest, FailedStreamThrowsOutputError) {
    std::ostringstream out;
    out.setstate(std::ios::badbit);
    EXPECT_THROW(writePprof(profile_, out), OutputError);
}

// decode_raw output: "N: value" for a scalar, "N {" ... "}" for what parsed
// as a nested message. Our reading keeps, per field number, the printed
// scalars and the nested messages.
struct RawMessage {
    std::multimap<int, std::string> scalars;
    std::multimap<int, RawMessage> messages;

    std::vector<std::string> all(int field) const {
        std::vector<std::string> values;
        auto [begin, end] = scalars.equal_range(field);
        for (auto it = begin; it != end; ++it) values.push_back(it->second);
        return values;
    }
    std::string one(int field) const {
        std::vector<std::string> values = all(field);
        return values.size() == 1 ? values[0] : "<" + std::to_string(values.size()) + " values>";
    }
    std::vector<const RawMessage*> nested(int field) const {
        std::vector<const RawMessage*> values;
        auto [begin, end] = messages.equal_range(field);
        for (auto it = begin; it != end; ++it) values.push_back(&it->second);
        return values;
    }
};

RawMessage parseRaw(std::istream& in) {
    RawMessage message;
    std::string line;
    while (std::getline(in, line)) {
        line.erase(0, line.find_first_not_of(' '));
        if (line == "}") break;
        if (line.size() > 2 && line.compare(line.size() - 2, 2, " {") == 0) {
            message.messages.emplace(std::stoi(line), parseRaw(in));
        } else if (size_t colon = line.find(": "); colon != std::string::npos) {
            message.scalars.emplace(std::stoi(line), line.substr(colon + 2));
        }
    }
    return message;
}

// The bytes of a length-delimited field as decode_raw prints them: quoted,
// with C escapes (octal for most non-printable bytes).
std::string unescape(const std::string& printed) {
    std::string bytes;
    for (size_t i = 1; i + 1 < printed.size(); ++i) {
        if (printed[i] != '\\') {
            bytes += printed[i];
        } else if (printed[i + 1] >= '0' && printed[i + 1] <= '7') {
            bytes += static_cast<char>(std::stoi(printed.substr(i + 1, 3), nullptr, 8));
            i += 3;
        } else {
            static const std::map<char, char> kEscapes = {{'n', '\n'}, {'r', '\r'},  {'t', '\t'},
                                                          {'"', '"'},  {'\'', '\''}, {'\\', '\\'}};
            bytes += kEscapes.at(printed[++i]);
        }
    }
    return bytes;
}

// A packed repeated varint field (proto3's default for repeated numbers),
// which decode_raw can only print as bytes. Our values are small, so the
// first byte is below 8 (field number 0, invalid) and decode_raw never
// mistakes them for a nested message.
std::vector<uint64_t> packedVarints(const std::string& printed) {
    std::vector<uint64_t> values;
    uint64_t value = 0;
    int shift = 0;
    for (char c : unescape(printed)) {
        auto byte = static_cast<uint8_t>(c);
        value |= uint64_t{byte & 0x7fu} << shift;
        shift += 7;
        if (byte < 0x80) {
            values.push_back(value);
            value = 0;
            shift = 0;
        }
    }
    return values;
}

// A string as decode_raw prints it: quoted (our test strings need no escapes).
std::string quoted(const std::string& text) {
    return "\"" + text + "\"";
}

TEST_F(PprofTest, FieldNumbersMatchUpstreamWithoutOurSchema) {
    fs::path raw = scratchFile("raw.pb");
    fs::path decoded = scratchFile("raw.txt");
    std::ofstream(raw, std::ios::binary) << gunzip(written());
    ASSERT_TRUE(run(std::string(VIGIL_PROTOC) + " --decode_raw < " + raw.string() + " > " +
                    decoded.string()));
    std::ifstream in(decoded);
    RawMessage profile = parseRaw(in);
    fs::remove(raw);
    fs::remove(decoded);

    // 6: string_table, "" first.
    std::vector<std::string> table = profile.all(6);
    ASSERT_FALSE(table.empty());
    EXPECT_EQ(table[0], "\"\"");
    auto text = [&](const std::string& index) {
        size_t i = std::stoul(index);
        return i < table.size() ? table[i] : "<bad index " + index + ">";
    };
    // 1: sample_type, of ValueType {1: type, 2: unit}; 11: period_type.
    std::vector<const RawMessage*> sampleTypes = profile.nested(1);
    ASSERT_EQ(sampleTypes.size(), 2u);
    EXPECT_EQ(text(sampleTypes[0]->one(1)), quoted("samples"));
    EXPECT_EQ(text(sampleTypes[0]->one(2)), quoted("count"));
    EXPECT_EQ(text(sampleTypes[1]->one(1)), quoted("wall"));
    EXPECT_EQ(text(sampleTypes[1]->one(2)), quoted("nanoseconds"));
    ASSERT_EQ(profile.nested(11).size(), 1u);
    EXPECT_EQ(text(profile.nested(11)[0]->one(1)), quoted("wall"));
    // 12: period, 10: duration_nanos, 13: comment (packed).
    EXPECT_EQ(profile.one(12), std::to_string(kPeriodNs));
    EXPECT_EQ(profile.one(10), "1500000000");
    std::vector<uint64_t> comments = packedVarints(profile.one(13));
    ASSERT_EQ(comments.size(), 2u);
    EXPECT_EQ(text(std::to_string(comments[0])), quoted("vigil"));
    // 3: mapping {1: id, 5: filename}.
    ASSERT_EQ(profile.nested(3).size(), 1u);
    EXPECT_EQ(text(profile.nested(3)[0]->one(5)), quoted("[python]"));
    // 5: function {1: id, 2: name, 4: filename}; 4: location {1: id, 4: line
    // {1: function_id, 2: line}}.
    std::map<std::string, std::string> functionNames;
    for (const RawMessage* function : profile.nested(5)) {
        functionNames[function->one(1)] = text(function->one(2));
        if (text(function->one(2)) == quoted("helper")) {
            EXPECT_EQ(text(function->one(4)), quoted("lib.py"));
        }
    }
    std::map<uint64_t, std::string> frames;
    for (const RawMessage* location : profile.nested(4)) {
        ASSERT_EQ(location->nested(4).size(), 1u);
        const RawMessage* line = location->nested(4)[0];
        std::string name = unescape(functionNames[line->one(1)]);
        frames[std::stoul(location->one(1))] = name + ":" + line->one(2);
    }
    // 2: sample {1: location_id (packed, leaf first), 2: value (packed),
    // 3: label {1: key, 2: str}}.
    std::map<std::string, std::vector<int64_t>> samples;
    for (const RawMessage* sample : profile.nested(2)) {
        std::string thread;
        for (const RawMessage* label : sample->nested(3)) {
            if (text(label->one(1)) == quoted("thread")) thread = unescape(text(label->one(2)));
        }
        std::string key = thread + " |";
        for (uint64_t id : packedVarints(sample->one(1))) key += " " + frames[id];
        std::vector<uint64_t> values = packedVarints(sample->one(2));
        samples[key].assign(values.begin(), values.end());
    }
    EXPECT_EQ(samples, expectedSamples());
}

// go tool pprof is Google's own reader (upstream google/pprof, vendored in
// Go). It is optional here: golang-go is large and not in install-deps.sh.
TEST_F(PprofTest, GoToolPprofReadsIt) {
    if (!run("command -v go > /dev/null 2>&1")) GTEST_SKIP() << "go (golang-go) not installed";
    fs::path file = writtenFile("go.pb.gz");
    fs::path report = scratchFile("go.txt");
    ASSERT_TRUE(run("go tool pprof -traces " + file.string() + " > " + report.string() + " 2>&1"))
        << readFile(report);
    // Compare with runs of spaces made one: the column widths are pprof's.
    std::string text;
    for (char c : readFile(report)) {
        if (c != ' ' || text.empty() || text.back() != ' ') text += c;
    }
    fs::remove(file);
    fs::remove(report);
    for (const char* expected :
         {"Type: wall", "Duration: 1.50s", "thread: MainThread (100)",
          "process: python app.py (42)", "30ms work\n main\n", "40ms helper\n"}) {
        EXPECT_NE(text.find(expected), std::string::npos) << expected << " not in:\n" << text;
    }
}

}  // namespace
}  // namespace vigil
