// The code table of a trace, codes.vtc: events name code objects by small
// ids, and this file says what each id is (file, qualified name, first
// line). One record per id, appended once, before any block that uses it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vigil {

struct TraceCode {
    std::string file;
    std::string qualname;
    uint32_t firstLine = 0;
};

namespace trace {

// Ids for code objects, from 1 (0 means unknown): one id per distinct
// (file, qualname, first line). Not thread-safe: the TraceWriter locks.
class CodeTableBuilder {
  public:
    uint32_t define(std::string_view file, std::string_view qualname, uint32_t firstLine);
    // The records of the ids defined since the last call.
    std::string takeRecords();
    bool hasRecords() const { return !records_.empty(); }

  private:
    std::unordered_map<std::string, uint32_t> ids_;
    std::string records_;
};

// Appends the records in `bytes` to `codes` (index = id; [0] is unknown):
// returns how many bytes whole records took — what follows is a record
// still being written, or torn by a crash. Throws FormatError for a whole
// record that is bad.
size_t parseCodeRecords(std::string_view bytes, std::vector<TraceCode>& codes);

}  // namespace trace
}  // namespace vigil
