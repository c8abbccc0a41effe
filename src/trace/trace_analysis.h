// `vigil analyse`: where a trace's time went, line by line and function by
// function (docs/analyse.md has the definitions and their error bounds).
//
// Each thread's blocks are replayed in write order, one block at a time
// (a block decodes alone: its header carries the stack), into a stack of
// frames that knows when each frame's current line began; times go into
// flat tables keyed by (code, line) and by code. Nothing is allocated per
// event: one hash lookup per line event and per call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "trace/trace_reader.h"

namespace vigil {

struct LineStats {
    uint32_t code = 0;
    uint32_t line = 0;
    // From the start of each execution of the line to the next event of
    // its frame (the next line, an exception at another line, the return):
    // the calls it makes included. An execution nested in another one of
    // the same line (recursion) is not counted twice.
    int64_t timeNs = 0;
    // The part of timeNs spent in the line's own frame (calls excluded).
    int64_t ownNs = 0;
    // How many times the line was entered: line events, and calls that
    // start their frame at it (a function's first line, a generator or
    // coroutine resumed at its yield or await).
    uint64_t count = 0;
    // The most timeNs can be off because event times are interpolated: the
    // widths of the brackets (block_decoder.h) in which the executions
    // counted start or end with an interpolated time, each bracket once
    // (0 in a precise section).
    int64_t boundNs = 0;
};

struct FunctionStats {
    uint32_t code = 0;
    // From each call to its return, the outermost of recursive calls only.
    int64_t timeNs = 0;
    // The time it was the innermost recorded frame.
    int64_t ownNs = 0;
    // Calls, generators and coroutines resumed included (each resumption
    // is a call event). Frames already running when the trace starts are
    // timed but not counted.
    uint64_t calls = 0;
    int64_t boundNs = 0;  // the most timeNs can be off
};

struct ThreadSummary {
    int32_t thread = 0;  // native thread id
    uint32_t serial = 0;
    uint64_t events = 0;
    int64_t firstNs = 0;
    int64_t lastNs = 0;
};

struct TraceAnalysis {
    std::vector<LineStats> lines;  // in no particular order
    std::vector<FunctionStats> functions;
    std::vector<ThreadSummary> threads;  // by first time
    uint64_t events = 0;
    uint64_t blocks = 0;
    // The recorded wall time: the first and the last time point of the
    // blocks analysed (0, 0 for none).
    int64_t firstNs = 0;
    int64_t lastNs = 0;
    // Blocks that could not be decoded (the file changed since it was
    // checked): each stops its thread's analysis there.
    std::vector<std::string> warnings;

    int64_t wallNs() const { return lastNs - firstNs; }
};

// One call of a recorded function, for a timeline (chrome export): given
// when it returns, innermost first (post-order).
struct CallSpan {
    int32_t thread = 0;
    uint64_t task = 0;  // at the call
    uint32_t code = 0;
    uint32_t line = 0;   // where the frame started: the first line, or where it resumed
    uint32_t depth = 0;  // 1: the outermost recorded frame
    int64_t startNs = 0;
    int64_t endNs = 0;
    bool tied = false;        // starts at the same time as its caller's span
    bool before = false;      // already running when the thread's trace starts
    bool unfinished = false;  // still running when the thread's trace ends
};

struct AnalysisOptions {
    std::vector<int32_t> threads;  // native thread ids; empty: all
    // Called for every call, when it ends (or when the thread's trace ends).
    std::function<void(const CallSpan&)> onCall;
};

TraceAnalysis analyseTrace(const TraceReader& reader, const AnalysisOptions& options = {});

enum class AnalysisSort { kTime, kOwn, kCount, kAverage };
// "time", "own", "count", "average".
const char* analysisSortName(AnalysisSort sort);

// The first `top` rows by `sort`, largest first (ties: by time, then by
// code and line); top 0: all.
std::vector<LineStats> topLines(const TraceAnalysis& analysis, AnalysisSort sort, size_t top);
std::vector<FunctionStats> topFunctions(const TraceAnalysis& analysis, AnalysisSort sort,
                                        size_t top);

inline int64_t averageNs(const LineStats& line) {
    return line.count ? line.timeNs / static_cast<int64_t>(line.count) : line.timeNs;
}
inline int64_t averageNs(const FunctionStats& function) {
    return function.calls ? function.timeNs / static_cast<int64_t>(function.calls)
                          : function.timeNs;
}

// Line `line` (from 1) of `text`, without its end of line; empty past the end.
std::string_view sourceLine(std::string_view text, uint32_t line);

}  // namespace vigil
