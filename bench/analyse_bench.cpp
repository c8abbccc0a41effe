// `vigil analyse` on a large trace: events per second of the analysis
// (read, decode, aggregate by line and function) and of the Chrome
// timeline export (written to a stream that discards it).
//
// The trace: TraceWriter records one thread running a synthetic program
// (a PRNG picks among 16 functions of 12 lines each, calls nest up to 6
// deep, loops go back, about one call in six events), some 10 million
// events by default, with the writer's ordinary time points (not precise).
//
// Usage: vigil_bench_analyse [MILLIONS_OF_EVENTS] [REPETITIONS] [DIR]
// Prints one JSON object: medians over the repetitions.
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"

#include "trace/timeline_export.h"
#include "trace/trace_analysis.h"
#include "trace/trace_reader.h"
#include "trace/trace_writer.h"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

using bench::Random;

// Appends `events` events, letting the writer's thread catch up every
// 100,000 (as a traced interpreter, far slower than this loop, would).
uint64_t record(const std::string& dir, size_t events) {
    TraceOptions options;
    options.limits.maxBytes = 0;
    TraceWriter writer(dir, "bench", ::getpid(), options);
    std::vector<uint32_t> codes;
    for (uint32_t i = 0; i < 16; ++i)
        codes.push_back(writer.defineCode(fmt::format("/srv/app/module{}.py", i % 4),
                                          fmt::format("function_{}", i), 1 + 20 * i));
    ThreadTrace* thread = writer.thread(1);
    Random random(42);
    struct Frame {
        uint32_t first, line;
    };
    std::vector<Frame> stack;
    size_t done = 0;
    while (done < events) {
        for (size_t burst = 0; burst < 100'000; ++burst, ++done) {
            uint32_t roll = random.below(100);
            if (stack.empty() || (roll < 15 && stack.size() < 6)) {
                uint32_t index = random.below(16);
                stack.push_back({1 + 20 * index, 1 + 20 * index});
                thread->call(codes[index], stack.back().line);
            } else if (roll < 30 || stack.back().line >= stack.back().first + 12) {
                thread->ret();
                stack.pop_back();
            } else if (roll < 36) {
                stack.back().line = stack.back().first + 1;  // a loop goes back
                thread->line(stack.back().line);
            } else {
                thread->line(++stack.back().line);
            }
        }
        while (writer.stats().events + trace::kChunkWords < done && !writer.stats().stopped)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    writer.flush();
    if (writer.stats().stopped) std::fprintf(stderr, "vigil_bench_analyse: recording stopped\n");
    return writer.stats().events;
}

class NullBuffer : public std::streambuf {
  protected:
    std::streamsize xsputn(const char*, std::streamsize count) override { return count; }
    int overflow(int c) override { return c; }
};

double seconds(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
    size_t events = static_cast<size_t>((argc > 1 ? std::atof(argv[1]) : 10.0) * 1e6);
    int repetitions = argc > 2 ? std::atoi(argv[2]) : 5;
    std::string parent = argc > 3 ? argv[3] : "";
    if (parent.empty()) {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "vigil-bench-analyse-XXXXXX").string();
        if (!mkdtemp(pattern.data())) return 1;
        parent = pattern;
    }
    std::string dir = parent + "/trace";
    std::filesystem::remove_all(dir);
    auto start = Clock::now();
    uint64_t written = record(dir, events);
    double recordSeconds = seconds(start);
    int64_t bytes = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
        bytes += static_cast<int64_t>(entry.file_size());

    std::vector<double> analyse, exported;
    uint64_t calls = 0, lines = 0;
    for (int i = 0; i < repetitions; ++i) {
        start = Clock::now();
        TraceReader reader(dir);
        TraceAnalysis analysis = analyseTrace(reader);
        analyse.push_back(static_cast<double>(analysis.events) / seconds(start));
        lines = analysis.lines.size();
        NullBuffer discard;
        std::ostream out(&discard);
        start = Clock::now();
        TraceReader again(dir);
        calls = writeChromeTimeline(again, {}, out).calls;
        exported.push_back(static_cast<double>(analysis.events) / seconds(start));
    }
    if (argc <= 3) std::filesystem::remove_all(parent);
    fmt::print(
        "{{\"events\": {}, \"trace_bytes\": {}, \"record_seconds\": {:.2f}, "
        "\"analyse_events_per_s\": {:.0f}, \"export_events_per_s\": {:.0f}, "
        "\"lines\": {}, \"calls\": {}, \"repetitions\": {}}}\n",
        written, bytes, recordSeconds, bench::median(analyse), bench::median(exported), lines,
        calls, repetitions);
    return 0;
}
