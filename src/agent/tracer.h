// The execution recorder (issue 6, the capture side): the line-by-line
// execution of chosen code, in every thread, into a trace directory
// (src/trace/trace_writer.h, docs/trace-format.md); everything else runs at
// full speed. tracer.cpp says how, per version.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/rules.h"
#include "trace/trace_writer.h"

namespace vigil::agent {

// Which code is recorded: a code object whose module (its globals'
// __name__, at the first sight of the code) is one of the packages or under
// one, or whose file (co_filename) matches one of the globs.
class TraceSelection {
  public:
    void addPackage(std::string name) { packages_.push_back(std::move(name)); }
    // False, with problem set, for a glob that does not compile.
    bool addPath(std::string_view glob, std::string& problem);
    bool matches(std::string_view module, std::string_view file) const;

  private:
    std::vector<std::string> packages_;
    std::vector<Glob> paths_;
};

// Where a recording writes: a new run of baseDir (TraceWriter::open).
struct TraceTarget {
    std::string baseDir;
    std::string processName;
    TraceOptions options;
};

// One recording at a time, per process. All of these need the GIL.
// Starts recording; false with a Python exception set (OSError when the
// directory cannot be made).
bool startTracing(TraceSelection selection, const TraceTarget& target);
// Every thread's last events are written (the GIL is released meanwhile);
// false when nothing recorded.
bool stopTracing();
// Returns once everything recorded so far is in the files.
void flushTracing();
// Whether this thread's events carry a timestamp; returns the previous
// setting (false, and nothing changes, when not recording).
bool setPreciseTimestamps(bool on);
// In a forked child (the only thread left): records on into the parent's
// run, <run>/<process name>-<pid>; false with a Python exception set.
bool tracingAfterForkInChild();
// The recording's counts and directory; nullopt when not recording.
std::optional<TraceStats> tracingStats(std::string& dir);

// The module's trace_* functions (trace_start, trace_stop, trace_precise,
// trace_flush, trace_stats, trace_read, trace_after_fork_in_child;
// trace_thread_hook before 3.12).
bool addTraceFunctions(PyObject* module);

}  // namespace vigil::agent
