// `vigil analyse DIR`: the hottest lines and functions of an execution
// trace (docs/analyse.md), as a table or JSON; `--export chrome` writes its
// calls as a timeline for Perfetto or chrome://tracing instead.
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/errors.h"
#include "trace/process_dir.h"
#include "trace/timeline_export.h"
#include "trace/trace_analysis.h"
#include "trace/trace_reader.h"

namespace vigil::cli {
namespace {

using json = nlohmann::ordered_json;

struct AnalyseOptions {
    std::string dir;
    size_t top = 20;
    std::string sort = "time";
    std::vector<int32_t> threads;
    bool json = false;
    std::string exportFormat;
    std::string output;
};

AnalysisSort parseSort(const std::string& name) {
    for (AnalysisSort sort :
         {AnalysisSort::kTime, AnalysisSort::kOwn, AnalysisSort::kCount, AnalysisSort::kAverage})
        if (name == analysisSortName(sort)) return sort;
    throw UsageError(fmt::format("--sort {}: expected time, own, count or average", name));
}

std::string duration(int64_t ns) {
    if (ns < 1000) return fmt::format("{} ns", ns);
    if (ns < 1'000'000) return fmt::format("{:.2f} µs", ns / 1e3);
    if (ns < 1'000'000'000) return fmt::format("{:.2f} ms", ns / 1e6);
    return fmt::format("{:.3f} s", ns / 1e9);
}

// "1,234,567"
std::string grouped(uint64_t value) {
    std::string digits = std::to_string(value);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// Right-aligned in `width` columns (µs is one column and two bytes).
std::string right(const std::string& text, size_t width) {
    size_t columns = 0;
    for (unsigned char c : text) columns += (c & 0xC0) != 0x80;
    return columns >= width ? text : std::string(width - columns, ' ') + text;
}

std::string wallClock(const TraceMeta& meta, int64_t monotonicNs) {
    int64_t ns = meta.startRealtimeNs + (monotonicNs - meta.startMonotonicNs);
    time_t seconds = static_cast<time_t>(ns / 1'000'000'000);
    struct tm local {};
    localtime_r(&seconds, &local);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
    return fmt::format("{}.{:03}", text, (ns / 1'000'000) % 1000);
}

double percent(int64_t ns, int64_t wallNs) {
    return wallNs > 0 ? 100.0 * static_cast<double>(ns) / static_cast<double>(wallNs) : 0;
}

std::string trimmed(std::string_view text) {
    size_t begin = text.find_first_not_of(" \t");
    if (begin == std::string_view::npos) return {};
    size_t end = text.find_last_not_of(" \t");
    return std::string(text.substr(begin, end - begin + 1));
}

// The source text of lines, from the sources kept with the trace (the
// version kept first: the one the process loaded).
class Sources {
  public:
    Sources(const TraceReader& reader, int64_t atNs) : reader_(reader), atNs_(atNs) {}
    std::string line(const std::string& file, uint32_t line) {
        auto found = texts_.find(file);
        if (found == texts_.end()) found = texts_.emplace(file, reader_.source(file, atNs_)).first;
        return found->second ? trimmed(sourceLine(*found->second, line)) : std::string();
    }

  private:
    const TraceReader& reader_;
    int64_t atNs_;
    std::map<std::string, std::optional<std::string>> texts_;
};

struct Names {
    std::string file, function;
    uint32_t firstLine = 0;
};

Names namesOf(const TraceReader& reader, uint32_t code) {
    const TraceCode* known = reader.code(code);
    if (!known) return {"?", fmt::format("<code {}>", code), 0};
    return {known->file, known->qualname, known->firstLine};
}

std::string threadList(const TraceAnalysis& analysis) {
    std::string out;
    for (const ThreadSummary& thread : analysis.threads)
        out += fmt::format("{}{} ({} events)", out.empty() ? "" : ", ", thread.thread,
                           grouped(thread.events));
    return out;
}

std::string columns(const char* count, const char* what) {
    return fmt::format("{:>10} {:>10} {:>7} {:>9} {:>10} {}  {}", "Time", "Own", "%Wall", count,
                       "Average", right("±Bound", 10), what);
}

// Under the location column.
constexpr size_t kSourceIndent = 10 + 1 + 10 + 1 + 7 + 1 + 9 + 1 + 10 + 1 + 10 + 2 + 4;

std::string numbers(int64_t time, int64_t own, double share, uint64_t count, int64_t average,
                    int64_t bound) {
    return fmt::format("{} {} {:6.1f}% {:>9} {} {}", right(duration(time), 10),
                       right(duration(own), 10), share, grouped(count),
                       right(duration(average), 10), right(duration(bound), 10));
}

std::string textReport(const TraceReader& reader, const std::string& dir,
                       const TraceAnalysis& analysis, const std::vector<LineStats>& lines,
                       const std::vector<FunctionStats>& functions, const AnalyseOptions& options,
                       Sources& sources) {
    const TraceMeta& meta = reader.meta();
    int64_t wall = analysis.wallNs();
    std::string out = fmt::format("Trace of {} (pid {}): {}\n", meta.processName, meta.pid, dir);
    if (analysis.blocks == 0) return out + "No events recorded.\n";
    out += fmt::format("{} recorded from {}, {} events in {} blocks\n", duration(wall),
                       wallClock(meta, analysis.firstNs), grouped(analysis.events),
                       grouped(analysis.blocks));
    out += fmt::format("Threads: {}\n", threadList(analysis));
    out += fmt::format(
        "\nHottest lines by {} (time: in the line's frame, the calls it makes included; own: "
        "without them):\n{}\n",
        options.sort, columns("Count", "Line"));
    for (const LineStats& row : lines) {
        Names names = namesOf(reader, row.code);
        out += fmt::format("{}  {}:{} {}\n",
                           numbers(row.timeNs, row.ownNs, percent(row.timeNs, wall), row.count,
                                   averageNs(row), row.boundNs),
                           names.file, row.line, names.function);
        std::string text = sources.line(names.file, row.line);
        if (!text.empty()) out += fmt::format("{:{}}{}\n", "", kSourceIndent, text);
    }
    out += fmt::format(
        "\nFunctions by {} (time: from call to return; own: as the innermost recorded "
        "frame):\n{}\n",
        options.sort, columns("Calls", "Function"));
    for (const FunctionStats& row : functions) {
        Names names = namesOf(reader, row.code);
        out += fmt::format("{}  {} ({}:{})\n",
                           numbers(row.timeNs, row.ownNs, percent(row.timeNs, wall), row.calls,
                                   averageNs(row), row.boundNs),
                           names.function, names.file, names.firstLine);
    }
    return out;
}

std::string jsonReport(const TraceReader& reader, const std::string& dir,
                       const TraceAnalysis& analysis, const std::vector<LineStats>& lines,
                       const std::vector<FunctionStats>& functions, const AnalyseOptions& options,
                       Sources& sources) {
    const TraceMeta& meta = reader.meta();
    int64_t wall = analysis.wallNs();
    json threads = json::array();
    for (const ThreadSummary& thread : analysis.threads)
        threads.push_back({{"tid", thread.thread},
                           {"serial", thread.serial},
                           {"events", thread.events},
                           {"first_ns", thread.firstNs},
                           {"last_ns", thread.lastNs}});
    json warnings = json::array();
    if (reader.error()) warnings.push_back(reader.error()->what());
    for (const std::string& warning : analysis.warnings) warnings.push_back(warning);
    json lineRows = json::array();
    for (const LineStats& row : lines) {
        Names names = namesOf(reader, row.code);
        lineRows.push_back({{"file", names.file},
                            {"line", row.line},
                            {"function", names.function},
                            {"function_first_line", names.firstLine},
                            {"source", sources.line(names.file, row.line)},
                            {"time_ns", row.timeNs},
                            {"own_ns", row.ownNs},
                            {"count", row.count},
                            {"average_ns", averageNs(row)},
                            {"percent", percent(row.timeNs, wall)},
                            {"bound_ns", row.boundNs}});
    }
    json functionRows = json::array();
    for (const FunctionStats& row : functions) {
        Names names = namesOf(reader, row.code);
        functionRows.push_back({{"file", names.file},
                                {"function", names.function},
                                {"first_line", names.firstLine},
                                {"time_ns", row.timeNs},
                                {"own_ns", row.ownNs},
                                {"calls", row.calls},
                                {"average_ns", averageNs(row)},
                                {"percent", percent(row.timeNs, wall)},
                                {"bound_ns", row.boundNs}});
    }
    json document = {
        {"trace",
         {{"dir", dir},
          {"process_name", meta.processName},
          {"pid", meta.pid},
          {"format", meta.version},
          {"live", reader.live()},
          {"first_ns", analysis.firstNs},
          {"last_ns", analysis.lastNs},
          {"wall_ns", wall},
          {"start_realtime_ns", meta.startRealtimeNs + (analysis.firstNs - meta.startMonotonicNs)},
          {"events", analysis.events},
          {"blocks", analysis.blocks},
          {"threads", std::move(threads)},
          {"warnings", std::move(warnings)}}},
        {"sort", options.sort},
        {"top", options.top},
        {"lines", std::move(lineRows)},
        {"functions", std::move(functionRows)},
    };
    return document.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

void warn(const std::string& message) {
    fmt::print(stderr, "vigil: warning: {}\n", message);
}

int exportTimeline(const TraceReader& reader, const AnalyseOptions& options) {
    if (options.exportFormat != "chrome")
        throw UsageError(
            fmt::format("--export {}: the one format is chrome", options.exportFormat));
    std::string path = options.output.empty()
                           ? fmt::format("vigil-{}.trace.json", reader.meta().pid)
                           : options.output;
    TimelineStats stats;
    if (path == "-") {
        std::ostream& out = std::cout;
        stats = writeChromeTimeline(reader, options.threads, out);
        out.flush();
        if (!out) throw OutputError("cannot write to standard output");
    } else {
        // Written beside, then renamed: never half a file under the name.
        std::string partial = path + ".vigil-partial";
        {
            std::ofstream out(partial, std::ios::binary | std::ios::trunc);
            if (!out)
                throw OutputError(fmt::format("cannot write {}: {} (choose another path with -o)",
                                              path, std::strerror(errno)));
            stats = writeChromeTimeline(reader, options.threads, out);
            out.flush();
            if (!out) {
                int error = errno;
                ::unlink(partial.c_str());
                throw OutputError(fmt::format("cannot write {}: {} (is the disk full?)", path,
                                              std::strerror(error)));
            }
        }
        if (std::rename(partial.c_str(), path.c_str()) != 0) {
            int error = errno;
            ::unlink(partial.c_str());
            throw OutputError(fmt::format("cannot write {}: {}", path, std::strerror(error)));
        }
    }
    for (const std::string& warning : stats.warnings) warn(warning);
    if (path != "-")
        fmt::print(stderr, "vigil: wrote {} (chrome: {} calls of {} threads)\n", path,
                   grouped(stats.calls), stats.threads);
    return 0;
}

int runAnalyse(const AnalyseOptions& options) {
    AnalysisSort sort = parseSort(options.sort);
    std::string dir = findProcessDir(options.dir);
    TraceReader reader(dir);
    if (reader.error()) {
        if (reader.blocks().empty()) throw *reader.error();
        warn(fmt::format("{} (analysing what is intact)", reader.error()->what()));
    }
    if (!options.threads.empty()) {
        std::set<int32_t> present;
        for (const TraceBlock& block : reader.blocks()) present.insert(block.thread);
        for (int32_t thread : options.threads) {
            if (present.contains(thread)) continue;
            std::string list;
            for (int32_t each : present) list += (list.empty() ? "" : ", ") + std::to_string(each);
            throw UsageError(fmt::format("--thread {}: no such thread in the trace (it has: {})",
                                         thread, list.empty() ? "none" : list));
        }
    }
    if (!options.exportFormat.empty()) return exportTimeline(reader, options);

    AnalysisOptions analysisOptions;
    analysisOptions.threads = options.threads;
    TraceAnalysis analysis = analyseTrace(reader, analysisOptions);
    for (const std::string& warning : analysis.warnings) warn(warning);
    std::vector<LineStats> lines = topLines(analysis, sort, options.top);
    std::vector<FunctionStats> functions = topFunctions(analysis, sort, options.top);
    Sources sources(reader, analysis.firstNs);
    writeStdout(options.json
                    ? jsonReport(reader, dir, analysis, lines, functions, options, sources)
                    : textReport(reader, dir, analysis, lines, functions, options, sources));
    return 0;
}

}  // namespace

Command addAnalyseCommand(CLI::App& app, const Verbosity&) {
    auto options = std::make_shared<AnalyseOptions>();
    CLI::App* command = app.add_subcommand(
        "analyse",
        "The hottest lines and functions of an execution trace (vigil.trace), or its calls as a "
        "timeline");
    command->alias("analyze");
    command
        ->add_option("dir", options->dir,
                     "A trace: a process directory (BASE/latest/NAME), or a base or run directory "
                     "holding one")
        ->required();
    command->add_option("-n,--top", options->top, "Rows per table (0: all)")->capture_default_str();
    command
        ->add_option("-s,--sort", options->sort,
                     "time (the line's frame, calls included), own (without calls), count, or "
                     "average (time per execution)")
        ->capture_default_str();
    command->add_option("-t,--thread", options->threads,
                        "Only this thread (native id, as in vigil dump); repeat for several");
    CLI::Option* jsonFlag = command->add_flag("--json", options->json, "One JSON document");
    CLI::Option* exportOption =
        command->add_option("--export", options->exportFormat,
                            "chrome: the calls as a timeline (Chrome trace-event JSON: Perfetto, "
                            "chrome://tracing), written to -o");
    exportOption->excludes(jsonFlag);
    command
        ->add_option("-o,--output", options->output,
                     "The --export file (default vigil-PID.trace.json; - for standard output)")
        ->needs(exportOption);
    return {command, [options] { return runAnalyse(*options); }};
}

}  // namespace vigil::cli
