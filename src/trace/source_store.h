// The sources of a trace, sources.vts: the text of each recorded file as
// it was during the recording, so that a trace replays after the code
// changed. Records are appended, never rewritten: a file gets one record
// per version (path, modification time and size).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace vigil {

struct KeptSource {
    std::string path;
    int64_t mtimeNs = 0;  // the file's, CLOCK_REALTIME
    int64_t keptNs = 0;   // when it was copied, CLOCK_MONOTONIC
    std::string text;
};

namespace trace {

// The writer thread's side: which versions are kept already.
class SourceKeeper {
  public:
    // The record to append for the file's current version, or "" when it is
    // kept already or cannot be read ("<string>", a deleted file).
    std::string recordFor(const std::string& path, int64_t nowNs);

  private:
    std::set<std::tuple<std::string, int64_t, int64_t>> kept_;  // path, mtime, size
};

// Like parseCodeRecords: appends whole records, returns the bytes they
// took, throws FormatError for a whole record that is bad.
size_t parseSourceRecords(std::string_view bytes, std::vector<KeptSource>& sources);

}  // namespace trace
}  // namespace vigil
