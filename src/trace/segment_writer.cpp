#include "trace/segment_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil::trace {

SegmentWriter::SegmentWriter(std::string dir, int64_t segmentBytes)
    : dir_(std::move(dir)), segmentBytes_(segmentBytes) {
    std::string error;
    if (!open(1, error)) throw OutputError(error);
}

bool SegmentWriter::open(uint32_t number, std::string& error) {
    constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_APPEND;
    std::string dataPath = fmt::format("{}/{}", dir_, segmentFileName(number));
    std::string indexPath = fmt::format("{}/{}", dir_, indexFileName(number));
    std::string dataHeader = fileHeader(kSegmentMagic, number);
    std::string indexHeader = fileHeader(kIndexMagic, number);
    File data(dataPath, kFlags);
    int code = data.valid() ? data.write(dataHeader) : errno;
    const std::string* failed = &dataPath;
    File index;
    if (!code) {
        index = File(indexPath, kFlags);
        code = index.valid() ? index.write(indexHeader) : errno;
        failed = &indexPath;
    }
    if (code) {
        ::unlink(dataPath.c_str());
        ::unlink(indexPath.c_str());
        error = fmt::format("cannot create {}: {}", *failed, errorText(code));
        return false;
    }
    data_ = std::move(data);
    index_ = std::move(index);
    dataSize_ = static_cast<int64_t>(dataHeader.size());
    indexSize_ = static_cast<int64_t>(indexHeader.size());
    segments_.push_back({number, dataSize_ + indexSize_});
    bytes_ += dataSize_ + indexSize_;
    return true;
}

bool SegmentWriter::append(std::string_view block, const BlockHeader& header, std::string& error) {
    if (dataSize_ >= segmentBytes_ && !open(segments_.back().number + 1, error)) return false;
    IndexEntry entry;
    entry.number = header.number;
    entry.firstNs = header.firstNs;
    entry.lastNs = header.lastNs;
    entry.offset = static_cast<uint64_t>(dataSize_);
    entry.size = static_cast<uint32_t>(block.size());
    entry.threadSerial = header.threadSerial;
    entry.minDepth = header.minDepth;
    entry_.clear();
    appendIndexEntry(entry, entry_);
    uint32_t number = segments_.back().number;
    std::string failed;
    int code = data_.write(block);
    if (code) {
        failed = segmentFileName(number);
    } else if ((code = index_.write(entry_))) {
        failed = indexFileName(number);
    }
    if (code) {
        // Shrinking a file needs no space: this works on a full disk too.
        data_.truncate(dataSize_);
        index_.truncate(indexSize_);
        error = fmt::format("cannot write {}/{}: {}", dir_, failed, errorText(code));
        return false;
    }
    int64_t added = static_cast<int64_t>(block.size() + entry_.size());
    dataSize_ += static_cast<int64_t>(block.size());
    indexSize_ += static_cast<int64_t>(entry_.size());
    segments_.back().bytes += added;
    bytes_ += added;
    return true;
}

size_t SegmentWriter::dropOldest(int64_t maxBytes, int64_t otherBytes) {
    size_t dropped = 0;
    while (segments_.size() > 1 && bytes_ + otherBytes > maxBytes) {
        // The segment first: a reader lists segments, and finds the blocks
        // of one whose index is gone by reading the segment itself.
        const Segment& oldest = segments_.front();
        ::unlink(fmt::format("{}/{}", dir_, segmentFileName(oldest.number)).c_str());
        ::unlink(fmt::format("{}/{}", dir_, indexFileName(oldest.number)).c_str());
        bytes_ -= oldest.bytes;
        segments_.pop_front();
        ++dropped;
    }
    return dropped;
}

}  // namespace vigil::trace
