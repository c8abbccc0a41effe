// `vigil analyse --export chrome`: the calls of a trace as a timeline in
// Chrome's trace-event JSON (Perfetto, chrome://tracing): one complete
// ("X") event per call, on a track per thread (pid, native tid), with its
// file, line and asyncio task in its args.
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include "trace/trace_analysis.h"
#include "trace/trace_reader.h"

namespace vigil {

struct TimelineStats {
    uint64_t calls = 0;
    uint64_t threads = 0;
    std::vector<std::string> warnings;  // as TraceAnalysis::warnings
};

// Streams the JSON to `out` (the caller checks the stream). Only the
// threads of `threads` (native ids; empty: all).
TimelineStats writeChromeTimeline(const TraceReader& reader, const std::vector<int32_t>& threads,
                                  std::ostream& out);

}  // namespace vigil
