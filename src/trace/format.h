// The on-disk format of an execution trace, byte by byte in
// docs/trace-format.md: the files of a process directory, their headers, the
// block header, the index entry and the tags of the event payload. Every
// number is little-endian. Nothing here touches a file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace vigil {

enum class TraceEventKind : uint8_t { kLine, kCall, kReturn, kException, kTaskSwitch };
// "line", "call", "return", "exception", "task".
const char* traceEventKindName(TraceEventKind kind);

// One frame of the stack a block starts in.
struct TraceFrame {
    uint32_t code = 0;  // 0: the root, outside every recorded frame
    uint32_t line = 0;
    bool operator==(const TraceFrame&) const = default;
};

// One decoded event. `code` and `line` are those of the frame the event
// happens in (for a call: the new frame; for a return: the frame that
// returns); `depth` is that frame's: 1 for the outermost recorded frame, 0
// for the root outside them all.
struct TraceEvent {
    int32_t thread = 0;  // native thread id
    uint64_t task = 0;   // 0: none
    TraceEventKind kind = TraceEventKind::kLine;
    uint32_t code = 0;  // 0: unknown
    uint32_t line = 0;
    uint32_t depth = 0;
    int64_t estimatedTimeNs = 0;  // CLOCK_MONOTONIC, interpolated unless precise
    bool precise = false;         // the event carried its own timestamp
};

namespace trace {

inline constexpr uint32_t kFormatVersion = 1;

inline constexpr char kMetaFile[] = "trace.json";
inline constexpr char kCodesFile[] = "codes.vtc";
inline constexpr char kSourcesFile[] = "sources.vts";

// events-000001.vtr, events-000001.vti
std::string segmentFileName(uint32_t segment);
std::string indexFileName(uint32_t segment);
// The number in a segment file's name; nullopt for any other name.
std::optional<uint32_t> segmentNumber(std::string_view fileName);

// What is wrong with bytes that should hold a record of the format; the
// reader adds which file and which block.
class FormatError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// --- Little-endian numbers and varints ---

void putU32(std::string& out, uint32_t value);
void putU64(std::string& out, uint64_t value);
// LEB128: 7 bits per byte, low first, the high bit set on all but the last.
void putVarint(std::string& out, uint64_t value);
inline uint64_t zigzag(int64_t value) {
    return (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
}
inline int64_t unzigzag(uint64_t value) {
    return static_cast<int64_t>(value >> 1) ^ -static_cast<int64_t>(value & 1);
}

// Reads what the put functions wrote; throws FormatError past the end.
class ByteReader {
  public:
    explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}
    uint8_t u8();
    uint32_t u32();
    uint64_t u64();
    int64_t i64() { return static_cast<int64_t>(u64()); }
    uint64_t varint();
    std::string_view bytes(size_t size);
    size_t offset() const { return offset_; }
    bool atEnd() const { return offset_ == bytes_.size(); }

  private:
    std::string_view bytes_;
    size_t offset_ = 0;
};

// --- File headers: an 8-byte magic, u32 version, u32 number ---

inline constexpr size_t kFileHeaderSize = 16;
inline constexpr std::string_view kSegmentMagic{"VIGILTRE", 8};
inline constexpr std::string_view kIndexMagic{"VIGILTRI", 8};
inline constexpr std::string_view kCodesMagic{"VIGILTRC", 8};
inline constexpr std::string_view kSourcesMagic{"VIGILTRS", 8};

// `number` is the segment's for a segment and its index, 0 otherwise.
std::string fileHeader(std::string_view magic, uint32_t number);
// Throws FormatError unless `bytes` starts with that header (a newer
// version is refused with a message saying so).
void checkFileHeader(std::string_view bytes, std::string_view magic, uint32_t number);

// --- Blocks ---

inline constexpr uint32_t kBlockMagic = 0x42525456;  // "VTRB"
inline constexpr size_t kBlockFixedSize = 72;        // the header before its stack
// Sanity bounds: a header saying more is corrupt.
inline constexpr size_t kMaxStackFrames = 1 << 20;
inline constexpr size_t kMaxPayloadSize = 16 << 20;

struct BlockHeader {
    uint64_t number = 0;  // of the process's blocks, in write order, from 0
    uint32_t threadSerial = 0;
    int32_t thread = 0;  // native thread id
    uint64_t task = 0;   // current task at the start (0: none)
    int64_t firstNs = 0;
    int64_t lastNs = 0;
    uint32_t events = 0;
    uint32_t minDepth = 0;
    uint32_t rawSize = 0;  // payload before compression
    uint32_t compressedSize = 0;
    uint32_t payloadCrc = 0;            // of the compressed payload
    std::vector<TraceFrame> stack{{}};  // outermost first; [0] is the root
};

inline size_t blockHeaderSize(size_t frames) {
    return kBlockFixedSize + 8 * frames + 4;
}
void appendBlockHeader(const BlockHeader& header, std::string& out);
// The size of the whole header from its first kBlockFixedSize bytes.
size_t blockHeaderSize(std::string_view fixedPart);
// Parses and checks a whole header (blockHeaderSize bytes).
BlockHeader parseBlockHeader(std::string_view bytes);

// --- Index entries: one per block, in the segment's .vti file ---

inline constexpr size_t kIndexEntrySize = 48;

struct IndexEntry {
    uint64_t number = 0;
    int64_t firstNs = 0;
    int64_t lastNs = 0;
    uint64_t offset = 0;  // of the block in its segment
    uint32_t size = 0;    // header and payload
    uint32_t threadSerial = 0;
    uint32_t minDepth = 0;
};

void appendIndexEntry(const IndexEntry& entry, std::string& out);
IndexEntry parseIndexEntry(std::string_view bytes);

// --- The event payload: one tag byte per record ---

// 0x00-0xBF: a line event whose zigzag line delta is the tag itself.
inline constexpr uint8_t kTagLineLong = 0xC0;   // varint zigzag line delta
inline constexpr uint8_t kTagCall = 0xC1;       // varint code, varint line
inline constexpr uint8_t kTagReturn = 0xC2;     //
inline constexpr uint8_t kTagException = 0xC3;  // varint zigzag line delta
inline constexpr uint8_t kTagTask = 0xC4;       // varint task id
inline constexpr uint8_t kTagStamp = 0xC5;      // varint zigzag ns delta: the next event's time
inline constexpr uint8_t kTagMark = 0xC6;       // varint zigzag ns delta: a time between events

}  // namespace trace
}  // namespace vigil
