// Decoding of a code object's line table: bytecode offset -> source line.
//
// The table comes out of another process's memory, so it may be garbage or
// torn half-way through an update. decode() never reads outside the span,
// always terminates, produces at most one range per table entry, and keeps
// whatever it decoded before the first bytes no CPython would have written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/layout.h"

namespace vigil {

// A code object's line table, decoded once (by the code cache) into sorted ranges.
class LineTable {
  public:
    // Returned for instructions without a line (3.10+ tables can say so) and for
    // offsets the table does not cover.
    static constexpr int kNoLine = -1;
    // Tables longer than this are decoded up to here only and marked malformed.
    static constexpr size_t kMaxTableBytes = size_t{4} << 20;

    // Bytecode offsets [start, end) whose instructions are on `line`.
    struct Range {
        uint32_t start;
        uint32_t end;
        int32_t line;  // >= 0, or kNoLine
    };

    // An empty table: every offset is kNoLine.
    LineTable() = default;

    // `table` is the raw bytes of co_lnotab (3.8-3.9) or co_linetable (3.10+),
    // `firstLineNo` the code object's co_firstlineno.
    static LineTable decode(LineTableFormat format, int firstLineNo,
                            std::span<const uint8_t> table);

    // The source line of the instruction starting at this byte offset in the bytecode, as
    // CPython's PyCode_Addr2Line computes it:
    //   3.8-3.9  offset = f_lasti (already in bytes)
    //   3.10     offset = f_lasti * 2 (3.10's f_lasti counts 2-byte code units)
    //   3.11+    offset = (instruction pointer - first instruction) in bytes, i.e.
    //            _PyInterpreterFrame_LASTI(frame) * 2
    // A negative f_lasti/LASTI (a frame that has not started yet) is not an offset: CPython
    // answers co_firstlineno for it, so callers should use firstLineNo().
    //
    // Offsets past the end of the table: 3.8-3.9 give the last line (co_lnotab has no end;
    // CPython extends its last line forever), 3.10+ give kNoLine (CPython answers -1 too).
    // The same holds past the point where a malformed table stopped decoding.
    // Never allocates; O(log ranges).
    int lineAt(uint32_t byteOffset) const;

    int firstLineNo() const { return firstLineNo_; }
    LineTableFormat format() const { return format_; }
    // Sorted, non-overlapping, non-empty; adjacent ranges with the same line merged.
    // For 3.8-3.9 the last range ends at UINT32_MAX.
    std::span<const Range> ranges() const { return ranges_; }
    // True when decoding stopped before the end of the table: bytes that no CPython writes
    // (a torn or garbage read), an implausible line number, or a table over kMaxTableBytes.
    bool malformed() const { return malformed_; }
    // Heap and object bytes, for the code cache's accounting.
    size_t memoryBytes() const { return sizeof(*this) + ranges_.capacity() * sizeof(Range); }

  private:
    void add(uint64_t start, uint64_t end, int64_t line);

    std::vector<Range> ranges_;
    int firstLineNo_ = 0;
    LineTableFormat format_ = LineTableFormat::kLocationTable;
    bool malformed_ = false;
};

}  // namespace vigil
