#include "trace/timeline_export.h"

#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vigil {
namespace {

std::string quoted(const std::string& text) {
    return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Microseconds with nanosecond digits, exact (no floating point).
void appendMicros(std::string& out, int64_t ns) {
    if (ns < 0) {
        out += '-';
        ns = -ns;
    }
    fmt::format_to(std::back_inserter(out), "{}.{:03}", ns / 1000, ns % 1000);
}

// Writes spans as complete events. Spans come in post-order; one that
// starts at its caller's very start time is written after its caller
// (viewers nest events of equal start by their order in the file).
class Writer {
  public:
    Writer(const TraceReader& reader, std::ostream& out) : reader_(reader), out_(out) {}

    void metadata(const std::set<int32_t>& threads) {
        const TraceMeta& meta = reader_.meta();
        add(fmt::format(R"({{"ph":"M","name":"process_name","pid":{},"args":{{"name":{}}}}})",
                        meta.pid, quoted(fmt::format("{} (pid {})", meta.processName, meta.pid))));
        for (int32_t thread : threads)
            add(fmt::format(
                R"({{"ph":"M","name":"thread_name","pid":{},"tid":{},"args":{{"name":"thread {}"}}}})",
                meta.pid, thread, thread));
    }

    void span(const CallSpan& span) {
        size_t depth = span.depth;
        if (deferred_.size() < depth + 2) deferred_.resize(depth + 2);
        std::vector<CallSpan>& inner = deferred_[depth + 1];
        if (span.tied) {
            deferred_[depth].push_back(span);
            deferred_[depth].insert(deferred_[depth].end(), inner.begin(), inner.end());
        } else {
            write(span);
            for (const CallSpan& each : inner) write(each);
        }
        inner.clear();
    }

    void finish(const TimelineStats& stats) {
        const TraceMeta& meta = reader_.meta();
        buffer_ += fmt::format(
            "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{{\"exporter\":\"vigil 0.1.0\","
            "\"process_name\":{},\"pid\":{},\"calls\":{},\"start_monotonic_ns\":{},"
            "\"start_realtime_ns\":{},\"time_unit\":\"ts and dur: microseconds of "
            "CLOCK_MONOTONIC\"}}}}\n",
            quoted(meta.processName), meta.pid, stats.calls, meta.startMonotonicNs,
            meta.startRealtimeNs);
        flush();
    }

    uint64_t calls() const { return calls_; }

  private:
    struct Names {
        std::string name;  // quoted
        std::string file;  // quoted
    };

    const Names& names(uint32_t code) {
        auto found = names_.find(code);
        if (found != names_.end()) return found->second;
        const TraceCode* known = reader_.code(code);
        Names names{quoted(known ? known->qualname : fmt::format("code {}", code)),
                    quoted(known ? known->file : "")};
        return names_.emplace(code, std::move(names)).first->second;
    }

    void write(const CallSpan& span) {
        const Names& name = names(span.code);
        begin();
        buffer_ += R"({"ph":"X","cat":"python","name":)";
        buffer_ += name.name;
        fmt::format_to(std::back_inserter(buffer_), R"(,"pid":{},"tid":{},"ts":)",
                       reader_.meta().pid, span.thread);
        appendMicros(buffer_, span.startNs);
        buffer_ += ",\"dur\":";
        appendMicros(buffer_, span.endNs - span.startNs);
        buffer_ += R"(,"args":{"file":)";
        buffer_ += name.file;
        fmt::format_to(std::back_inserter(buffer_), R"(,"line":{})", span.line);
        if (span.task) fmt::format_to(std::back_inserter(buffer_), R"(,"task":{})", span.task);
        if (span.before) buffer_ += R"(,"started_before_trace":true)";
        if (span.unfinished) buffer_ += R"(,"unfinished":true)";
        buffer_ += "}}";
        ++calls_;
        if (buffer_.size() > (1 << 20)) flush();
    }

    void add(const std::string& event) {
        begin();
        buffer_ += event;
    }
    void begin() {
        buffer_ += first_ ? "{\"traceEvents\":[\n" : ",\n";
        first_ = false;
    }
    void flush() {
        out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
        buffer_.clear();
    }

    const TraceReader& reader_;
    std::ostream& out_;
    std::string buffer_;
    bool first_ = true;
    uint64_t calls_ = 0;
    std::unordered_map<uint32_t, Names> names_;
    std::vector<std::vector<CallSpan>> deferred_;  // [d]: tied spans, callers at depth d-1
};

}  // namespace

TimelineStats writeChromeTimeline(const TraceReader& reader, const std::vector<int32_t>& threads,
                                  std::ostream& out) {
    std::unordered_set<int32_t> wanted(threads.begin(), threads.end());
    std::set<int32_t> seen;
    for (const TraceBlock& block : reader.blocks())
        if (wanted.empty() || wanted.contains(block.thread)) seen.insert(block.thread);
    Writer writer(reader, out);
    writer.metadata(seen);
    AnalysisOptions options;
    options.threads = threads;
    options.onCall = [&writer](const CallSpan& span) { writer.span(span); };
    TraceAnalysis analysis = analyseTrace(reader, options);
    TimelineStats stats;
    stats.calls = writer.calls();
    stats.threads = seen.size();
    stats.warnings = std::move(analysis.warnings);
    writer.finish(stats);
    return stats;
}

}  // namespace vigil
