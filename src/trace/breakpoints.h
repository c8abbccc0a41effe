// The breakpoints of a replay: a line of a file, where `c` stops. A file
// is named as the user types it, a path or its end (flow.py,
// traced_pkg/flow.py), and matches every recorded file whose path ends
// with it at a '/' boundary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trace/format.h"
#include "trace/trace_reader.h"

namespace vigil {

struct Breakpoint {
    int id = 0;  // from 1, never reused
    std::string file;
    uint32_t line = 0;
};

class Breakpoints {
  public:
    // "LINE" (in currentFile) or "FILE:LINE". Throws UsageError.
    const Breakpoint& add(std::string_view spec, const std::string& currentFile);
    // Removes breakpoint `id`; false when there is none.
    bool remove(int id);
    void clear() { list_.clear(); }
    const std::vector<Breakpoint>& list() const { return list_; }

    // The breakpoint a line or call event stops at: it is about to run
    // that line (a call, at its first line).
    const Breakpoint* hitBy(const TraceEvent& event, const TraceReader& reader) const;

  private:
    std::vector<Breakpoint> list_;
    int nextId_ = 1;
};

// Whether `path` is `file` or ends with "/" + `file`.
bool fileMatches(std::string_view path, std::string_view file);

}  // namespace vigil
