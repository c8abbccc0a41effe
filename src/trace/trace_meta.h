// trace.json: who wrote a trace and when — the process (PID and start
// time, so that the reader can tell a trace still being written from one
// whose writer died), its name, and the two clocks at the start, which
// turn the trace's CLOCK_MONOTONIC times into wall-clock times.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace vigil {

struct TraceMeta {
    uint32_t version = 0;  // of the trace format
    int32_t pid = 0;
    uint64_t processStartTicks = 0;  // /proc/PID/stat starttime
    std::string processName;
    int64_t startMonotonicNs = 0;
    int64_t startRealtimeNs = 0;
};

namespace trace {

// Writes <dir>/trace.json whole (a temporary file linked into place).
// Throws OutputError, also when the directory holds a trace already.
void writeTraceMeta(const std::string& dir, const TraceMeta& meta);
// Throws BadFileError: no trace in dir, or one of a newer format.
TraceMeta readTraceMeta(const std::string& dir);
// True while the process that wrote the trace runs.
bool writerAlive(const TraceMeta& meta);

}  // namespace trace
}  // namespace vigil
