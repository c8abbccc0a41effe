// The execution recorder (issue 6, the capture side): the line-by-line
// execution of chosen code, in every thread, into a TraceSink
// (trace_sink.h, which says what a recording holds); everything else runs
// at full speed. tracer.cpp says how, per version.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/trace_sink.h"
#include "core/rules.h"

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

// One recording at a time, per process. All of these need the GIL.
// Starts recording into sink; false with a Python exception set.
bool startTracing(TraceSelection selection, std::shared_ptr<TraceSink> sink);
// Every thread's last events reach the sink; false when nothing recorded.
bool stopTracing();
// Sends every thread's buffered events to the sink now.
void flushTracing();
// Whether this thread's events carry a timestamp; returns the previous
// setting (false, and nothing changes, when not recording).
bool setPreciseTimestamps(bool on);

// The module's trace_* functions (trace_start, trace_stop, trace_precise,
// trace_flush, trace_collected, trace_counts; trace_thread_hook before 3.12).
bool addTraceFunctions(PyObject* module);

}  // namespace vigil::agent
