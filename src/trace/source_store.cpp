#include "trace/source_store.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "trace/crc32.h"
#include "trace/format.h"

namespace vigil::trace {
namespace {

// u32 magic, u32 path size, u64 text size, i64 mtime, i64 kept, u32 text
// CRC-32, then the path, u32 CRC-32 of everything before, then the text.
constexpr uint32_t kSourceMagic = 0x43525356;  // "VSRC"
constexpr size_t kRecordFixedSize = 36;

}  // namespace

std::string SourceKeeper::recordFor(const std::string& path, int64_t nowNs) {
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0 || !S_ISREG(status.st_mode)) return {};
    int64_t mtimeNs = int64_t{status.st_mtim.tv_sec} * 1'000'000'000 + status.st_mtim.tv_nsec;
    if (!kept_.emplace(path, mtimeNs, static_cast<int64_t>(status.st_size)).second) return {};
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    if (!(text << in.rdbuf())) return {};
    std::string content = text.str();
    std::string record;
    putU32(record, kSourceMagic);
    putU32(record, static_cast<uint32_t>(path.size()));
    putU64(record, content.size());
    putU64(record, static_cast<uint64_t>(mtimeNs));
    putU64(record, static_cast<uint64_t>(nowNs));
    putU32(record, crc32(content));
    record += path;
    putU32(record, crc32(record));
    record += content;
    return record;
}

size_t parseSourceRecords(std::string_view bytes, std::vector<KeptSource>& sources) {
    size_t offset = 0;
    while (bytes.size() - offset >= kRecordFixedSize) {
        ByteReader reader(bytes.substr(offset));
        size_t at = kFileHeaderSize + offset;
        if (reader.u32() != kSourceMagic)
            throw FormatError(fmt::format("bad magic in the source record at offset {}", at));
        uint64_t pathSize = reader.u32();
        uint64_t textSize = reader.u64();
        KeptSource source;
        source.mtimeNs = reader.i64();
        source.keptNs = reader.i64();
        uint32_t textCrc = reader.u32();
        if (bytes.size() - offset - kRecordFixedSize < pathSize + 4 + textSize) break;
        source.path = reader.bytes(pathSize);
        size_t headerSize = kRecordFixedSize + pathSize;
        if (reader.u32() != crc32(bytes.data() + offset, headerSize))
            throw FormatError(fmt::format("bad checksum in the source record at offset {}", at));
        source.text = reader.bytes(textSize);
        if (crc32(source.text) != textCrc)
            throw FormatError(
                fmt::format("bad checksum of the text of {} at offset {}", source.path, at));
        sources.push_back(std::move(source));
        offset += headerSize + 4 + textSize;
    }
    return offset;
}

}  // namespace vigil::trace
