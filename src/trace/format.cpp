#include "trace/format.h"

#include <charconv>

#include <fmt/format.h>

#include "trace/crc32.h"

namespace vigil {

const char* traceEventKindName(TraceEventKind kind) {
    switch (kind) {
        case TraceEventKind::kLine:
            return "line";
        case TraceEventKind::kCall:
            return "call";
        case TraceEventKind::kReturn:
            return "return";
        case TraceEventKind::kException:
            return "exception";
        case TraceEventKind::kTaskSwitch:
            return "task";
    }
    return "?";
}

namespace trace {
namespace {

constexpr std::string_view kSegmentPrefix = "events-";
constexpr std::string_view kSegmentSuffix = ".vtr";

}  // namespace

std::string segmentFileName(uint32_t segment) {
    return fmt::format("events-{:06d}.vtr", segment);
}

std::string indexFileName(uint32_t segment) {
    return fmt::format("events-{:06d}.vti", segment);
}

std::optional<uint32_t> segmentNumber(std::string_view fileName) {
    if (!fileName.starts_with(kSegmentPrefix) || !fileName.ends_with(kSegmentSuffix))
        return std::nullopt;
    std::string_view digits = fileName.substr(
        kSegmentPrefix.size(), fileName.size() - kSegmentPrefix.size() - kSegmentSuffix.size());
    uint32_t number = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size())
        return std::nullopt;
    return number;
}

void putU32(std::string& out, uint32_t value) {
    for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(value >> shift));
}

void putU64(std::string& out, uint64_t value) {
    for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<char>(value >> shift));
}

void putVarint(std::string& out, uint64_t value) {
    while (value >= 0x80) {
        out.push_back(static_cast<char>(value | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}

uint8_t ByteReader::u8() {
    return static_cast<uint8_t>(bytes(1)[0]);
}

uint32_t ByteReader::u32() {
    std::string_view raw = bytes(4);
    uint32_t value = 0;
    for (int i = 3; i >= 0; --i) value = value << 8 | static_cast<uint8_t>(raw[i]);
    return value;
}

uint64_t ByteReader::u64() {
    uint64_t low = u32();
    return low | uint64_t{u32()} << 32;
}

uint64_t ByteReader::varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t byte = u8();
        value |= uint64_t{byte & 0x7fu} << shift;
        if (!(byte & 0x80)) return value;
    }
    throw FormatError(fmt::format("a varint longer than 10 bytes at offset {}", offset_));
}

std::string_view ByteReader::bytes(size_t size) {
    if (size > bytes_.size() - offset_)
        throw FormatError(fmt::format("{} bytes needed at offset {}, {} left", size, offset_,
                                      bytes_.size() - offset_));
    std::string_view view = bytes_.substr(offset_, size);
    offset_ += size;
    return view;
}

std::string fileHeader(std::string_view magic, uint32_t number) {
    std::string header(magic);
    putU32(header, kFormatVersion);
    putU32(header, number);
    return header;
}

void checkFileHeader(std::string_view bytes, std::string_view magic, uint32_t number) {
    ByteReader reader(bytes);
    if (reader.bytes(magic.size()) != magic)
        throw FormatError("not a vigil trace file (bad magic)");
    uint32_t version = reader.u32();
    if (version > kFormatVersion)
        throw FormatError(fmt::format(
            "written in trace format {}, newer than this vigil reads ({}): use a newer vigil",
            version, kFormatVersion));
    if (version == 0) throw FormatError("bad format version 0");
    uint32_t stored = reader.u32();
    if (stored != number)
        throw FormatError(fmt::format("says it is number {}, its name says {}", stored, number));
}

void appendBlockHeader(const BlockHeader& header, std::string& out) {
    size_t start = out.size();
    putU32(out, kBlockMagic);
    putU32(out, static_cast<uint32_t>(blockHeaderSize(header.stack.size())));
    putU64(out, header.number);
    putU32(out, header.threadSerial);
    putU32(out, static_cast<uint32_t>(header.thread));
    putU64(out, header.task);
    putU64(out, static_cast<uint64_t>(header.firstNs));
    putU64(out, static_cast<uint64_t>(header.lastNs));
    putU32(out, header.events);
    putU32(out, static_cast<uint32_t>(header.stack.size()));
    putU32(out, header.minDepth);
    putU32(out, header.rawSize);
    putU32(out, header.compressedSize);
    putU32(out, header.payloadCrc);
    for (const TraceFrame& frame : header.stack) {
        putU32(out, frame.code);
        putU32(out, frame.line);
    }
    putU32(out, crc32(out.data() + start, out.size() - start));
}

size_t blockHeaderSize(std::string_view fixedPart) {
    ByteReader reader(fixedPart.substr(0, kBlockFixedSize));
    if (reader.u32() != kBlockMagic) throw FormatError("bad block magic");
    uint32_t size = reader.u32();
    reader.bytes(44);
    uint32_t frames = reader.u32();
    if (frames == 0 || frames > kMaxStackFrames || size != blockHeaderSize(frames))
        throw FormatError(fmt::format("bad header size {} for {} frames", size, frames));
    return size;
}

BlockHeader parseBlockHeader(std::string_view bytes) {
    size_t size = blockHeaderSize(bytes);
    if (bytes.size() < size) throw FormatError("truncated header");
    ByteReader reader(bytes.substr(0, size));
    reader.bytes(8);
    BlockHeader header;
    header.number = reader.u64();
    header.threadSerial = reader.u32();
    header.thread = static_cast<int32_t>(reader.u32());
    header.task = reader.u64();
    header.firstNs = reader.i64();
    header.lastNs = reader.i64();
    header.events = reader.u32();
    uint32_t frames = reader.u32();
    header.minDepth = reader.u32();
    header.rawSize = reader.u32();
    header.compressedSize = reader.u32();
    header.payloadCrc = reader.u32();
    header.stack.resize(frames);
    for (TraceFrame& frame : header.stack) {
        frame.code = reader.u32();
        frame.line = reader.u32();
    }
    uint32_t stored = reader.u32();
    if (stored != crc32(bytes.data(), size - 4)) throw FormatError("bad header checksum");
    if (header.rawSize > kMaxPayloadSize || header.compressedSize > kMaxPayloadSize)
        throw FormatError(fmt::format("implausible payload size {} (compressed {})", header.rawSize,
                                      header.compressedSize));
    if (header.lastNs < header.firstNs || header.minDepth > frames - 1)
        throw FormatError("inconsistent header");
    return header;
}

void appendIndexEntry(const IndexEntry& entry, std::string& out) {
    size_t start = out.size();
    putU64(out, entry.number);
    putU64(out, static_cast<uint64_t>(entry.firstNs));
    putU64(out, static_cast<uint64_t>(entry.lastNs));
    putU64(out, entry.offset);
    putU32(out, entry.size);
    putU32(out, entry.threadSerial);
    putU32(out, entry.minDepth);
    putU32(out, crc32(out.data() + start, out.size() - start));
}

IndexEntry parseIndexEntry(std::string_view bytes) {
    ByteReader reader(bytes.substr(0, kIndexEntrySize));
    IndexEntry entry;
    entry.number = reader.u64();
    entry.firstNs = reader.i64();
    entry.lastNs = reader.i64();
    entry.offset = reader.u64();
    entry.size = reader.u32();
    entry.threadSerial = reader.u32();
    entry.minDepth = reader.u32();
    if (reader.u32() != crc32(bytes.data(), kIndexEntrySize - 4))
        throw FormatError("bad index entry checksum");
    return entry;
}

}  // namespace trace
}  // namespace vigil
