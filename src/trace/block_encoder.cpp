#include "trace/block_encoder.h"

#include <zstd.h>

#include <algorithm>
#include <new>

#include "trace/crc32.h"
#include "trace/thread_trace.h"

namespace vigil::trace {

BlockEncoder::BlockEncoder(int compressionLevel)
    : context_(ZSTD_createCCtx()), level_(compressionLevel) {}

BlockEncoder::~BlockEncoder() {
    ZSTD_freeCCtx(context_);
}

void BlockEncoder::start(const ThreadReplay& replay) {
    header_ = BlockHeader{};
    header_.stack = replay.stack;
    header_.task = replay.task;
    header_.minDepth = static_cast<uint32_t>(replay.stack.size() - 1);
    payload_.clear();
    pending_.clear();
    timed_ = false;
}

void BlockEncoder::mark(int64_t ns) {
    pending_.push_back({kTagMark, ns});
}

void BlockEncoder::event() {
    if (header_.events == 0 && !pending_.empty())
        pending_.erase(pending_.begin(), pending_.end() - 1);
    for (const TimePoint& point : pending_) time(point);
    pending_.clear();
    ++header_.events;
}

// Times are deltas from the previous time point of the block; the first
// one's delta is 0 and its time is the header's firstNs.
void BlockEncoder::time(const TimePoint& point) {
    if (!timed_) {
        header_.firstNs = header_.lastNs = lastNs_ = point.ns;
        timed_ = true;
    }
    payload_.push_back(static_cast<char>(point.tag));
    putVarint(payload_, zigzag(point.ns - lastNs_));
    lastNs_ = point.ns;
    header_.lastNs = std::max(header_.lastNs, point.ns);
}

// Most lines are a few lines away from the frame's previous one: one byte.
void BlockEncoder::lineDelta(uint32_t from, uint32_t to) {
    uint64_t delta = zigzag(int64_t{to} - int64_t{from});
    if (delta < kTagLineLong) {
        payload_.push_back(static_cast<char>(delta));
    } else {
        payload_.push_back(static_cast<char>(kTagLineLong));
        putVarint(payload_, delta);
    }
}

void BlockEncoder::add(std::span<const uint32_t> words, ThreadReplay& replay) {
    std::vector<TraceFrame>& stack = replay.stack;
    for (size_t at = 0; at < words.size();) {
        uint32_t value = words[at] >> kRawKindBits;
        auto kind = static_cast<RawKind>(words[at] & ((1u << kRawKindBits) - 1));
        if (kind != kRawStamp && kind != kRawMark) event();
        switch (kind) {
            case kRawStamp:
            case kRawMark:
                pending_.push_back({kind == kRawStamp ? kTagStamp : kTagMark,
                                    static_cast<int64_t>(uint64_t{value} << 32 | words[at + 1])});
                at += kRawTimeWords;
                continue;  // not an event
            case kRawLine:
                lineDelta(stack.back().line, value);
                stack.back().line = value;
                at += 1;
                break;
            case kRawCall:
                payload_.push_back(static_cast<char>(kTagCall));
                putVarint(payload_, value);
                putVarint(payload_, words[at + 1]);
                // Past the header's bound the depth stays (the decoder does the same).
                if (stack.size() < kMaxStackFrames) stack.push_back({value, words[at + 1]});
                at += 2;
                break;
            case kRawReturn:
                payload_.push_back(static_cast<char>(kTagReturn));
                if (stack.size() > 1) stack.pop_back();
                at += 1;
                break;
            case kRawException:
                payload_.push_back(static_cast<char>(kTagException));
                putVarint(payload_, zigzag(int64_t{value} - int64_t{stack.back().line}));
                stack.back().line = value;
                at += 1;
                break;
            case kRawTask:
                replay.task = uint64_t{words[at + 1]} | uint64_t{words[at + 2]} << 32;
                payload_.push_back(static_cast<char>(kTagTask));
                putVarint(payload_, replay.task);
                at += 3;
                break;
        }
        header_.minDepth = std::min(header_.minDepth, static_cast<uint32_t>(stack.size() - 1));
    }
}

void BlockEncoder::finish(uint64_t number, uint32_t threadSerial, int32_t thread,
                          std::string& out) {
    if (!pending_.empty()) time(pending_.front());
    pending_.clear();
    header_.number = number;
    header_.threadSerial = threadSerial;
    header_.thread = thread;
    compressed_.resize(ZSTD_compressBound(payload_.size()));
    size_t size = ZSTD_compressCCtx(context_, compressed_.data(), compressed_.size(),
                                    payload_.data(), payload_.size(), level_);
    // With a buffer of compressBound bytes, only memory can be missing.
    if (ZSTD_isError(size)) throw std::bad_alloc();
    compressed_.resize(size);
    header_.rawSize = static_cast<uint32_t>(payload_.size());
    header_.compressedSize = static_cast<uint32_t>(compressed_.size());
    header_.payloadCrc = crc32(compressed_);
    out.clear();
    appendBlockHeader(header_, out);
    out += compressed_;
}

}  // namespace vigil::trace
