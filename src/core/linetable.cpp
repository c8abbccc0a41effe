#include "core/linetable.h"

#include <algorithm>
#include <limits>

namespace vigil {
namespace {

constexpr uint64_t kOpenEnd = std::numeric_limits<uint32_t>::max();
constexpr int64_t kMaxLine = std::numeric_limits<int32_t>::max();

// 3.11+ location entry kinds (_PyCodeLocationInfoKind).
// https://github.com/python/cpython/blob/v3.11.7/Include/cpython/code.h
constexpr int kShortFormMax = 9;  // 0-9: same line, column in the code and one byte
constexpr int kOneLine0 = 10;     // 10-12: line delta = code - 10, two column bytes
constexpr int kOneLine2 = 12;
constexpr int kNoColumns = 13;   // svarint line delta
constexpr int kLongForm = 14;    // svarint line delta, then three varints
constexpr int kNoLocation = 15;  // no line; the running line is unchanged

// Reads one varint from [pos, end): 6-bit chunks, least significant first, bit 6 set on
// all but the last. A chunk with bit 7 set would begin the next entry, so it is never a
// continuation. Returns false on a varint that is cut off or wider than 36 bits.
// https://github.com/python/cpython/blob/v3.11.7/Objects/locations.md
bool readVarint(std::span<const uint8_t> t, size_t& pos, size_t end, uint64_t& out) {
    uint64_t value = 0;
    for (int shift = 0; shift <= 30; shift += 6) {
        if (pos >= end) return false;
        uint8_t b = t[pos++];
        value |= uint64_t{b & 63u} << shift;
        if ((b & 64) == 0) {
            out = value;
            return true;
        }
    }
    return false;
}

// Signed varint: the magnitude shifted left once, the low bit set for negatives.
// https://github.com/python/cpython/blob/v3.11.7/Objects/locations.md
bool readSignedVarint(std::span<const uint8_t> t, size_t& pos, size_t end, int64_t& out) {
    uint64_t raw = 0;
    if (!readVarint(t, pos, end, raw)) return false;
    int64_t magnitude = static_cast<int64_t>(raw >> 1);
    out = (raw & 1) ? -magnitude : magnitude;
    return true;
}

}  // namespace

void LineTable::add(uint64_t start, uint64_t end, int64_t line) {
    if (start >= end) return;
    if (!ranges_.empty() && ranges_.back().end == start && ranges_.back().line == line) {
        ranges_.back().end = static_cast<uint32_t>(end);
        return;
    }
    ranges_.push_back(
        {static_cast<uint32_t>(start), static_cast<uint32_t>(end), static_cast<int32_t>(line)});
}

LineTable LineTable::decode(LineTableFormat format, int firstLineNo,
                            std::span<const uint8_t> table) {
    LineTable lt;
    lt.format_ = format;
    lt.firstLineNo_ = firstLineNo;
    if (table.size() > kMaxTableBytes) {
        table = table.first(kMaxTableBytes);
        lt.malformed_ = true;
    }
    auto plausible = [](int64_t line) { return line >= 0 && line <= kMaxLine; };

    // Every range end is checked against kOpenEnd before use; the addresses accumulate in
    // 64 bits, so with kMaxTableBytes they cannot wrap.
    uint64_t addr = 0;
    int64_t line = firstLineNo;
    bool ok = true;

    switch (format) {
        case LineTableFormat::kLnotab: {
            // 3.8-3.9 co_lnotab: (unsigned byte offset delta, signed line delta) pairs; a
            // delta applies from the offset reached by the same pair, so the line of offset A
            // is firstlineno plus the line deltas of all pairs whose running offset is <= A.
            // https://github.com/python/cpython/blob/v3.8.18/Objects/lnotab_notes.txt
            // Line deltas are signed bytes since 3.6.
            // https://github.com/python/cpython/blob/v3.8.18/Objects/codeobject.c
            // (PyCode_Addr2Line) dis.findlinestarts gives the same lines: its starts are where the
            // line changes. https://github.com/python/cpython/blob/v3.8.18/Lib/dis.py
            if (table.size() % 2 != 0) lt.malformed_ = true;
            size_t pairs = table.size() / 2;
            lt.ranges_.reserve(pairs + 1);
            for (size_t i = 0; i < pairs; ++i) {
                uint8_t offsetDelta = table[2 * i];
                int8_t lineDelta = static_cast<int8_t>(table[2 * i + 1]);
                if (offsetDelta != 0) {
                    // Zero-offset pairs only move the line (jumps over 127 lines are split
                    // into several of them); only the line in force over real bytes counts.
                    if (!plausible(line) || addr + offsetDelta >= kOpenEnd) {
                        ok = false;
                        break;
                    }
                    lt.add(addr, addr + offsetDelta, line);
                    addr += offsetDelta;
                }
                line += lineDelta;
            }
            // The last line holds for every later offset, as in PyCode_Addr2Line.
            if (ok && !plausible(line)) ok = false;
            if (ok) lt.add(addr, kOpenEnd, line);
            break;
        }

        case LineTableFormat::kLinetable310: {
            // 3.10 co_linetable (PEP 626): (unsigned byte offset delta, signed line delta)
            // pairs, each describing the range [offset, offset + delta) with the line after
            // applying its own delta; -128 means "no line" and leaves the running line alone.
            // https://github.com/python/cpython/blob/v3.10.13/Objects/lnotab_notes.txt
            // https://github.com/python/cpython/blob/v3.10.13/Objects/codeobject.c (advance)
            // Offsets are bytes, but 3.10's f_lasti counts code units: callers pass f_lasti*2.
            // https://github.com/python/cpython/blob/v3.10.13/Objects/frameobject.c
            if (table.size() % 2 != 0) lt.malformed_ = true;
            size_t pairs = table.size() / 2;
            lt.ranges_.reserve(pairs);
            for (size_t i = 0; i < pairs; ++i) {
                uint8_t offsetDelta = table[2 * i];
                int8_t lineDelta = static_cast<int8_t>(table[2 * i + 1]);
                int64_t rangeLine = kNoLine;
                if (lineDelta != -128) {
                    line += lineDelta;
                    rangeLine = line;
                }
                if (offsetDelta == 0) continue;  // empty ranges only carry line deltas
                if ((rangeLine != kNoLine && !plausible(rangeLine)) ||
                    addr + offsetDelta >= kOpenEnd) {
                    ok = false;
                    break;
                }
                lt.add(addr, addr + offsetDelta, rangeLine);
                addr += offsetDelta;
            }
            break;
        }

        case LineTableFormat::kLocationTable: {
            // 3.11+ co_linetable (PEP 657): entries starting with a byte with bit 7 set,
            // code in bits 3-6 and (length in code units - 1) in bits 0-2, followed by
            // bytes with bit 7 clear. The same encoding in 3.12 and 3.13.
            // https://github.com/python/cpython/blob/v3.11.7/Objects/locations.md
            // https://github.com/python/cpython/blob/v3.13.0/Include/internal/pycore_code.h
            // Each entry's start-line delta applies to the running line even when the entry
            // has no column info; "no location" leaves it alone.
            // https://github.com/python/cpython/blob/v3.11.7/Objects/codeobject.c (advance)
            lt.ranges_.reserve(table.size() / 2 + 1);
            size_t pos = 0;
            while (pos < table.size()) {
                uint8_t head = table[pos];
                if ((head & 0x80) == 0) {
                    ok = false;
                    break;
                }
                size_t end = pos + 1;
                while (end < table.size() && (table[end] & 0x80) == 0) ++end;
                int code = (head >> 3) & 15;
                uint64_t length = (uint64_t{head & 7u} + 1) * 2;  // in bytes
                size_t p = pos + 1;
                int64_t rangeLine = kNoLine;
                if (code <= kShortFormMax) {
                    // One byte of column info; same line.
                    ok = end - p == 1;
                    rangeLine = line;
                } else if (code <= kOneLine2) {
                    // Start and end column bytes.
                    ok = end - p == 2;
                    line += code - kOneLine0;
                    rangeLine = line;
                } else if (code == kNoColumns || code == kLongForm) {
                    int64_t delta = 0;
                    ok = readSignedVarint(table, p, end, delta);
                    if (ok && code == kLongForm) {
                        // End-line delta, start column + 1, end column + 1.
                        uint64_t ignored = 0;
                        for (int i = 0; i < 3 && ok; ++i) ok = readVarint(table, p, end, ignored);
                    }
                    ok = ok && p == end;
                    line += delta;
                    rangeLine = line;
                } else {
                    static_assert(kNoLocation == 15);
                    ok = end == p;
                }
                if (!ok || (rangeLine != kNoLine && !plausible(rangeLine)) ||
                    addr + length >= kOpenEnd) {
                    ok = false;
                    break;
                }
                lt.add(addr, addr + length, rangeLine);
                addr += length;
                pos = end;
            }
            break;
        }
    }

    if (!ok) lt.malformed_ = true;
    lt.ranges_.shrink_to_fit();
    return lt;
}

int LineTable::lineAt(uint32_t byteOffset) const {
    // The first range starting after the offset; the one before it may contain it.
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), byteOffset,
                               [](uint32_t off, const Range& r) { return off < r.start; });
    if (it == ranges_.begin()) return kNoLine;
    --it;
    return byteOffset < it->end ? it->line : kNoLine;
}

}  // namespace vigil
