// The execution trace's two costs: nanoseconds per event appended by the
// application's thread, and bytes on disk per line event once compressed.
//
// - line: one thread appends line events (16 lines of one frame, round
//   and round) as fast as it can, in the steady state (the writer's thread
//   compressing on the other core). What the capture side adds to each
//   event comes on top.
// - mix: one thread replays a precomputed recording-like stream (below)
//   through call/line/ret; the files it leaves are measured after flush():
//   segments, indexes, code table, description.
//
// The stream: a synthetic program of 12 functions in 4 levels (5 to 25
// lines, the leaves 3 to 8), each a sequence of statements — plain lines (40%), if/else with
// odds of 90/10 or 50/50 (12%), for loops of 1-6 iterations over 1-5
// statements (8%, not nested), and calls of a function of the next level
// (40%): about one call per five lines, as in ordinary Python code.
// Branches and loop counts come from a PRNG: ordinary code's mix of
// regular and data-dependent control flow. The first function is run
// again and again.
//
// Usage: vigil_bench_trace [REPETITIONS] [MILLIONS_OF_EVENTS] [DIR]
// Prints one JSON object: medians over repetitions, run interleaved.
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"

#include "trace/trace_writer.h"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

using bench::Random;

struct Statement {
    enum Kind { kLine, kIf, kLoop, kCall } kind = kLine;
    uint32_t line = 0;
    int callee = -1;
    uint32_t oddsPerMille = 0;
    uint32_t maxIterations = 0;
    std::vector<Statement> body;
    std::vector<Statement> orElse;
};

struct Function {
    uint32_t code = 0;
    uint32_t firstLine = 0;
    std::vector<Statement> body;
};

struct Event {
    enum Kind : uint8_t { kCall, kLine, kReturn } kind;
    uint32_t code;
    uint32_t line;
};

class Program {
  public:
    Program(TraceWriter& writer, uint64_t seed) : random_(seed) {
        uint32_t line = 1;
        for (int i = 0; i < kLevels * kPerLevel; ++i) {
            Function function;
            function.firstLine = line;
            uint32_t next = line + 1;
            bool leaf = i / kPerLevel == kLevels - 1;
            uint32_t end = line + (leaf ? 3 + random_.below(6) : 5 + random_.below(21));
            while (next < end) function.body.push_back(statement(i / kPerLevel, next, 0));
            function.code = writer.defineCode("/srv/app/service.py", fmt::format("function_{}", i),
                                              function.firstLine);
            functions_.push_back(std::move(function));
            line = next + 2;
        }
    }

    // Runs main() until `count` events were emitted.
    std::vector<Event> run(size_t count) {
        std::vector<Event> events;
        while (events.size() < count) call(0, events);
        events.resize(count);
        return events;
    }

  private:
    static constexpr int kLevels = 4;
    static constexpr int kPerLevel = 3;

    Statement statement(int level, uint32_t& line, int nesting) {
        Statement statement;
        statement.line = line++;
        uint32_t roll = random_.below(100);
        if (roll < 12 && nesting < 2) {
            statement.kind = Statement::kIf;
            statement.oddsPerMille = random_.below(2) ? 900 : 500;
            statement.body = block(level, line, nesting + 1);
            statement.orElse = block(level, line, nesting + 1);
        } else if (roll < 20 && nesting == 0) {
            statement.kind = Statement::kLoop;
            statement.maxIterations = 1 + random_.below(6);
            statement.body = block(level, line, nesting + 1);
        } else if (roll < 60 && level + 1 < kLevels) {
            statement.kind = Statement::kCall;
            statement.callee = (level + 1) * kPerLevel + static_cast<int>(random_.below(kPerLevel));
        }
        return statement;
    }

    std::vector<Statement> block(int level, uint32_t& line, int nesting) {
        std::vector<Statement> statements;
        for (uint32_t i = 1 + random_.below(5); i > 0; --i)
            statements.push_back(statement(level, line, nesting));
        return statements;
    }

    void call(int index, std::vector<Event>& events) {
        const Function& function = functions_[static_cast<size_t>(index)];
        events.push_back({Event::kCall, function.code, function.firstLine});
        run(function.body, events);
        events.push_back({Event::kReturn, 0, 0});
    }

    void run(const std::vector<Statement>& statements, std::vector<Event>& events) {
        for (const Statement& statement : statements) {
            events.push_back({Event::kLine, 0, statement.line});
            switch (statement.kind) {
                case Statement::kLine:
                    break;
                case Statement::kIf:
                    run(random_.below(1000) < statement.oddsPerMille ? statement.body
                                                                     : statement.orElse,
                        events);
                    break;
                case Statement::kLoop:
                    for (uint32_t i = random_.below(statement.maxIterations) + 1; i > 0; --i) {
                        run(statement.body, events);
                        events.push_back({Event::kLine, 0, statement.line});
                    }
                    break;
                case Statement::kCall:
                    call(statement.callee, events);
                    break;
            }
        }
    }

    Random random_;
    std::vector<Function> functions_;
};

std::string freshDir(const std::string& parent) {
    std::string dir = parent + "/run";
    std::filesystem::remove_all(dir);
    return dir;
}

TraceOptions benchOptions() {
    TraceOptions options;
    options.limits.maxBytes = 0;  // measure writing, not the size limit
    options.report = [](const std::string& line) {
        std::fprintf(stderr, "vigil_bench_trace: %s\n", line.c_str());
    };
    return options;
}

// Appends in bursts of about as many chunks as a thread keeps spare, each
// timed, then waits (untimed) until the writer's thread caught up but for
// the chunk being filled: the steady state of a thread whose writer keeps
// up (real capture appends 10-30 million events a second, a tight loop
// here some 300 million, faster than any compressor).
template <typename Append>
double appendInBursts(TraceWriter& writer, size_t events, Append append) {
    constexpr size_t kBurst = 100'000;
    std::chrono::nanoseconds spent{0};
    for (size_t done = 0; done < events;) {
        size_t end = std::min(events, done + kBurst);
        auto start = Clock::now();
        for (size_t i = done; i < end; ++i) append(i);
        spent += Clock::now() - start;
        done = end;
        while (writer.stats().events + trace::kChunkWords < done && !writer.stats().stopped)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return static_cast<double>(spent.count()) / static_cast<double>(events);
}

// Nanoseconds per line event.
double appendLines(const std::string& parent, size_t events) {
    TraceWriter writer(freshDir(parent), "bench", ::getpid(), benchOptions());
    ThreadTrace* thread = writer.thread(1);
    thread->call(writer.defineCode("/srv/app/loop.py", "loop", 1), 1);
    auto line = [thread](size_t i) { thread->line(2 + static_cast<uint32_t>(i & 15)); };
    appendInBursts(writer, 1'000'000, line);  // warm: spare chunks, caches
    return appendInBursts(writer, events, line);
}

struct MixResult {
    double nsPerEvent;
    double bytesPerLineEvent;
    double bytesPerEvent;
    double lineShare;
};

MixResult appendMix(const std::string& parent, size_t events) {
    std::string dir = freshDir(parent);
    MixResult result{};
    {
        TraceWriter writer(dir, "bench", ::getpid(), benchOptions());
        std::vector<Event> stream = Program(writer, 7).run(events);
        size_t lines = 0;
        for (const Event& event : stream) lines += event.kind == Event::kLine;
        ThreadTrace* thread = writer.thread(1);
        result.nsPerEvent = appendInBursts(writer, stream.size(), [&](size_t i) {
            const Event& event = stream[i];
            switch (event.kind) {
                case Event::kCall:
                    thread->call(event.code, event.line);
                    break;
                case Event::kLine:
                    thread->line(event.line);
                    break;
                case Event::kReturn:
                    thread->ret();
                    break;
            }
        });
        writer.flush();
        if (writer.stats().stopped) std::fprintf(stderr, "vigil_bench_trace: recording stopped\n");
        result.lineShare = static_cast<double>(lines) / static_cast<double>(stream.size());
        double bytes = 0;
        for (const auto& entry : std::filesystem::directory_iterator(dir))
            bytes += static_cast<double>(entry.file_size());
        result.bytesPerLineEvent = bytes / static_cast<double>(lines);
        result.bytesPerEvent = bytes / static_cast<double>(stream.size());
    }
    return result;
}

}  // namespace

int main(int argc, char** argv) {
    using bench::median;
    int repetitions = argc > 1 ? std::atoi(argv[1]) : 7;
    size_t events = static_cast<size_t>(argc > 2 ? std::atof(argv[2]) * 1e6 : 20e6);
    std::string parent = argc > 3 ? argv[3] : "";
    if (parent.empty()) {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "vigil-bench-trace-XXXXXX").string();
        if (!mkdtemp(pattern.data())) return 1;
        parent = pattern;
    }
    std::vector<double> line, mix, bytesPerLine, bytesPerEvent;
    double lineShare = 0;
    for (int repetition = 0; repetition < repetitions; ++repetition) {
        line.push_back(appendLines(parent, events));
        MixResult result = appendMix(parent, events);
        mix.push_back(result.nsPerEvent);
        bytesPerLine.push_back(result.bytesPerLineEvent);
        bytesPerEvent.push_back(result.bytesPerEvent);
        lineShare = result.lineShare;
    }
    if (argc <= 3) std::filesystem::remove_all(parent);
    fmt::print(
        "{{\"append_line_ns\": {:.2f}, \"append_mix_ns\": {:.2f}, "
        "\"bytes_per_line_event\": {:.3f}, \"bytes_per_event\": {:.3f}, \"line_share\": {:.2f}, "
        "\"events\": {}, \"repetitions\": {}}}\n",
        median(line), median(mix), median(bytesPerLine), median(bytesPerEvent), lineShare, events,
        repetitions);
    return 0;
}
