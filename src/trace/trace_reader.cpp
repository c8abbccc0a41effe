#include "trace/trace_reader.h"

#include <fcntl.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <utility>

#include <fmt/format.h>

#include "trace/block_decoder.h"

namespace vigil {

using namespace trace;

TraceReader::TraceReader(std::string dir) : dir_(std::move(dir)), meta_(readTraceMeta(dir_)) {
    load();
}

bool TraceReader::reload() {
    size_t before = blocks_.size();
    load();
    return blocks_.size() > before;
}

void TraceReader::load() {
    live_ = writerAlive(meta_);
    openNewSegments();
    while (!broken_) {
        auto it = segments_.lower_bound(current_);
        if (it == segments_.end()) break;
        current_ = it->first;
        bool last = std::next(it) == segments_.end();
        // The last segment is read up to its current end; a later load goes on there.
        if (!readSegment(it->first, it->second, last) || last) break;
        ++current_;
    }
    readTable(kCodesFile, kCodesMagic, codesRead_,
              [this](std::string_view bytes) { return parseCodeRecords(bytes, codes_); });
    readTable(kSourcesFile, kSourcesMagic, sourcesRead_,
              [this](std::string_view bytes) { return parseSourceRecords(bytes, sources_); });
    std::sort(blocks_.begin(), blocks_.end(), [](const TraceBlock& a, const TraceBlock& b) {
        return std::pair(a.firstNs, a.number) < std::pair(b.firstNs, b.number);
    });
    lastNsUpTo_.resize(blocks_.size());
    for (size_t i = 0; i < blocks_.size(); ++i)
        lastNsUpTo_[i] = i ? std::max(lastNsUpTo_[i - 1], blocks_[i].lastNs) : blocks_[i].lastNs;
}

// Segments that appeared since the last load. One deleted since the
// listing (the size limit) is skipped; one deleted after it was opened
// stays readable through its descriptor.
void TraceReader::openNewSegments() {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, error)) {
        std::optional<uint32_t> number = segmentNumber(entry.path().filename().string());
        if (!number || *number < current_ || segments_.contains(*number)) continue;
        Segment segment;
        segment.data = File(entry.path().string(), O_RDONLY);
        if (segment.data.valid()) segments_.emplace(*number, std::move(segment));
    }
}

// False when reading must stop in this segment: a bad block, or the end of
// what the writer has written so far.
bool TraceReader::readSegment(uint32_t number, Segment& segment, bool last) {
    if (segment.checkedEnd == 0) {
        std::string header = segment.data.readAt(0, kFileHeaderSize);
        if (header.size() < kFileHeaderSize) {
            if (!(last && live_)) fail(number, "its file header is truncated");
            return false;
        }
        try {
            checkFileHeader(header, kSegmentMagic, number);
        } catch (const FormatError& error) {
            fail(number, fmt::format("bad file header: {}", error.what()));
            return false;
        }
        segment.checkedEnd = kFileHeaderSize;
    }
    readIndex(number, segment);
    while (true) {
        switch (readBlock(number, segment, last)) {
            case Outcome::kRead:
                break;
            case Outcome::kEnd:
                return true;
            case Outcome::kStop:
                return false;
        }
    }
}

// The index gives each block's size, so that it is read in one go. It is
// only a help: a segment whose index is missing or bad is read block by
// block from the headers.
void TraceReader::readIndex(uint32_t number, Segment& segment) {
    File index(path(indexFileName(number)), O_RDONLY);
    if (!index.valid()) return;
    try {
        if (segment.indexRead == 0) {
            std::string header = index.readAt(0, kFileHeaderSize);
            if (header.size() < kFileHeaderSize) return;  // being created
            checkFileHeader(header, kIndexMagic, number);
            segment.indexRead = kFileHeaderSize;
        }
        std::string bytes = index.readFrom(segment.indexRead);
        for (size_t at = 0; at + kIndexEntrySize <= bytes.size(); at += kIndexEntrySize) {
            IndexEntry entry = parseIndexEntry(std::string_view(bytes).substr(at));
            if (entry.offset >= segment.checkedEnd) segment.entries.emplace(entry.offset, entry);
            segment.indexRead += kIndexEntrySize;
        }
    } catch (const FormatError&) {
        segment.indexRead = UINT64_MAX;  // not read again: the blocks are found without it
    }
}

TraceReader::Outcome TraceReader::readBlock(uint32_t number, Segment& segment, bool last) {
    uint64_t offset = segment.checkedEnd;
    int64_t fileSize = segment.data.size();
    if (fileSize >= 0 && offset >= static_cast<uint64_t>(fileSize)) return Outcome::kEnd;
    auto hint = segment.entries.find(offset);
    std::string name = hint != segment.entries.end() ? fmt::format("block {}", hint->second.number)
                       : nextNumber_                 ? fmt::format("block {}", *nextNumber_)
                                                     : std::string("the first block");
    std::string bytes = segment.data.readAt(
        offset, hint != segment.entries.end() ? hint->second.size : kBlockFixedSize);
    // Reads up to `size` bytes of the block; false when the file ends first.
    auto have = [&](size_t size) {
        if (bytes.size() < size)
            bytes += segment.data.readAt(offset + bytes.size(), size - bytes.size());
        return bytes.size() >= size;
    };
    auto truncated = [&](size_t size) {
        // While the process runs, that is the block being written.
        if (!(last && live_))
            fail(number, fmt::format("{} at offset {} is truncated: {} of its {} bytes are there "
                                     "(the process was killed while writing it, or the file was "
                                     "cut)",
                                     name, offset, bytes.size(), size));
        return Outcome::kStop;
    };
    try {
        if (!have(kBlockFixedSize)) return truncated(kBlockFixedSize);
        size_t headerSize = blockHeaderSize(bytes);
        if (!have(headerSize)) return truncated(headerSize);
        BlockHeader header = parseBlockHeader(bytes);
        size_t size = headerSize + header.compressedSize;
        if (!have(size)) return truncated(size);
        checkPayload(header, std::string_view(bytes).substr(headerSize, header.compressedSize));
        if (nextNumber_ && header.number != *nextNumber_)
            throw FormatError(fmt::format("it says it is block {}", header.number));
        TraceBlock block;
        block.number = header.number;
        block.segment = number;
        block.offset = offset;
        block.size = static_cast<uint32_t>(size);
        block.threadSerial = header.threadSerial;
        block.thread = header.thread;
        block.task = header.task;
        block.firstNs = header.firstNs;
        block.lastNs = header.lastNs;
        block.events = header.events;
        block.minDepth = header.minDepth;
        block.stack = std::move(header.stack);
        blocks_.push_back(std::move(block));
        segment.checkedEnd = offset + size;
        if (hint != segment.entries.end()) segment.entries.erase(hint);
        nextNumber_ = header.number + 1;
        return Outcome::kRead;
    } catch (const FormatError& error) {
        fail(number, fmt::format("{} at offset {} is corrupt: {}", name, offset, error.what()));
        return Outcome::kStop;
    }
}

void TraceReader::fail(uint32_t segment, const std::string& what) {
    broken_ = true;
    error_ = BadFileError(fmt::format("{}: {}; the {} blocks written before it are intact",
                                      path(segmentFileName(segment)), what, blocks_.size()));
}

// The code table and the sources: whole records are taken, a record being
// written is read at the next load.
template <typename Parse>
void TraceReader::readTable(const char* name, std::string_view magic, uint64_t& offset,
                            Parse parse) {
    File file(path(name), O_RDONLY);
    if (!file.valid()) return;
    try {
        if (offset == 0) {
            std::string header = file.readAt(0, kFileHeaderSize);
            if (header.size() < kFileHeaderSize) return;
            checkFileHeader(header, magic, 0);
            offset = kFileHeaderSize;
        }
        offset += parse(file.readFrom(offset));
    } catch (const FormatError& error) {
        if (!error_) error_ = BadFileError(fmt::format("{}: {}", path(name), error.what()));
    }
}

std::vector<TraceEvent> TraceReader::decode(const TraceBlock& block) const {
    std::vector<TraceEvent> events;
    decodeInto(block, events, nullptr);
    return events;
}

void TraceReader::decode(const TraceBlock& block, std::vector<TraceEvent>& events,
                         std::vector<TimeBracket>& brackets) const {
    decodeInto(block, events, &brackets);
}

void TraceReader::decodeInto(const TraceBlock& block, std::vector<TraceEvent>& events,
                             std::vector<TimeBracket>* brackets) const {
    std::string file = path(segmentFileName(block.segment));
    auto segment = segments_.find(block.segment);
    std::string bytes = segment != segments_.end()
                            ? segment->second.data.readAt(block.offset, block.size)
                            : std::string();
    try {
        if (bytes.size() < block.size) throw FormatError("truncated");
        BlockHeader header = parseBlockHeader(bytes);
        decodeBlock(header, std::string_view(bytes).substr(blockHeaderSize(header.stack.size())),
                    events, brackets);
    } catch (const FormatError& error) {
        throw BadFileError(fmt::format("{}: block {} at offset {} is corrupt: {}", file,
                                       block.number, block.offset, error.what()));
    }
}

std::vector<const TraceBlock*> TraceReader::overlapping(int64_t fromNs, int64_t toNs) const {
    // Blocks before `first` all end before fromNs; blocks from `end` on all
    // start after toNs.
    size_t first = static_cast<size_t>(
        std::lower_bound(lastNsUpTo_.begin(), lastNsUpTo_.end(), fromNs) - lastNsUpTo_.begin());
    size_t end = static_cast<size_t>(
        std::upper_bound(blocks_.begin(), blocks_.end(), toNs,
                         [](int64_t ns, const TraceBlock& block) { return ns < block.firstNs; }) -
        blocks_.begin());
    std::vector<const TraceBlock*> found;
    for (size_t i = first; i < end; ++i)
        if (blocks_[i].lastNs >= fromNs) found.push_back(&blocks_[i]);
    return found;
}

std::vector<TraceEvent> TraceReader::events(int64_t fromNs, int64_t toNs) const {
    std::vector<TraceEvent> events;
    for (const TraceBlock* block : overlapping(fromNs, toNs))
        for (const TraceEvent& event : decode(*block))
            if (event.estimatedTimeNs >= fromNs && event.estimatedTimeNs <= toNs)
                events.push_back(event);
    // Blocks come in time order and each one's times never go back, so a
    // stable sort keeps every thread's order.
    std::stable_sort(events.begin(), events.end(), [](const TraceEvent& a, const TraceEvent& b) {
        return a.estimatedTimeNs < b.estimatedTimeNs;
    });
    return events;
}

const TraceCode* TraceReader::code(uint32_t id) const {
    return id > 0 && id < codes_.size() ? &codes_[id] : nullptr;
}

std::optional<std::string> TraceReader::source(const std::string& file, int64_t atNs) const {
    const KeptSource* found = nullptr;
    for (const KeptSource& kept : sources_) {
        if (kept.path != file) continue;
        if (!found || kept.keptNs <= atNs) found = &kept;
        if (kept.keptNs > atNs) break;
    }
    return found ? std::optional(found->text) : std::nullopt;
}

}  // namespace vigil
