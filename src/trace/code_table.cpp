#include "trace/code_table.h"

#include <utility>

#include <fmt/format.h>

#include "trace/crc32.h"
#include "trace/format.h"

namespace vigil::trace {
namespace {

// u32 id, u32 first line, u32 file size, u32 qualname size, the file, the
// qualname, u32 CRC-32 of all that.
constexpr size_t kRecordFixedSize = 16;

}  // namespace

uint32_t CodeTableBuilder::define(std::string_view file, std::string_view qualname,
                                  uint32_t firstLine) {
    std::string key = fmt::format("{}\n{}\n{}", file, qualname, firstLine);
    auto [it, added] = ids_.try_emplace(std::move(key), static_cast<uint32_t>(ids_.size() + 1));
    if (added) {
        size_t start = records_.size();
        putU32(records_, it->second);
        putU32(records_, firstLine);
        putU32(records_, static_cast<uint32_t>(file.size()));
        putU32(records_, static_cast<uint32_t>(qualname.size()));
        records_ += file;
        records_ += qualname;
        putU32(records_, crc32(records_.data() + start, records_.size() - start));
    }
    return it->second;
}

std::string CodeTableBuilder::takeRecords() {
    return std::exchange(records_, {});
}

size_t parseCodeRecords(std::string_view bytes, std::vector<TraceCode>& codes) {
    if (codes.empty()) codes.emplace_back();
    size_t offset = 0;
    while (bytes.size() - offset >= kRecordFixedSize) {
        ByteReader reader(bytes.substr(offset));
        uint32_t id = reader.u32();
        TraceCode code;
        code.firstLine = reader.u32();
        uint64_t fileSize = reader.u32();
        uint64_t nameSize = reader.u32();
        size_t size = kRecordFixedSize + fileSize + nameSize + 4;
        if (bytes.size() - offset < size) break;
        code.file = reader.bytes(fileSize);
        code.qualname = reader.bytes(nameSize);
        if (reader.u32() != crc32(bytes.data() + offset, size - 4))
            throw FormatError(fmt::format("bad checksum in the code record at offset {}",
                                          kFileHeaderSize + offset));
        if (id != codes.size())
            throw FormatError(fmt::format("code id {} at offset {}, expected {}", id,
                                          kFileHeaderSize + offset, codes.size()));
        codes.push_back(std::move(code));
        offset += size;
    }
    return offset;
}

}  // namespace vigil::trace
