// The writer thread's side of a block: the raw records of one thread
// (thread_trace.h) become the compact events of one self-contained block —
// its header carries the stack and task it starts in, its payload the
// events as deltas, compressed with zstd.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "trace/format.h"

struct ZSTD_CCtx_s;

namespace vigil::trace {

// Where a thread is, as the writer's thread replays its records: what a
// block that starts here begins with.
struct ThreadReplay {
    std::vector<TraceFrame> stack{{}};  // [0] is the root
    uint64_t task = 0;
};

class BlockEncoder {
  public:
    explicit BlockEncoder(int compressionLevel);
    ~BlockEncoder();
    BlockEncoder(const BlockEncoder&) = delete;
    BlockEncoder& operator=(const BlockEncoder&) = delete;

    // A new block, starting at the point `replay` describes.
    void start(const ThreadReplay& replay);
    // A time point between two records.
    void mark(int64_t ns);
    // Whole raw records; `replay` follows them.
    void add(std::span<const uint32_t> words, ThreadReplay& replay);
    uint32_t events() const { return header_.events; }
    // The block, header then compressed payload, into `out` (replaced).
    void finish(uint64_t number, uint32_t threadSerial, int32_t thread, std::string& out);
    // The header finish() wrote.
    const BlockHeader& header() const { return header_; }

  private:
    struct TimePoint {
        uint8_t tag;
        int64_t ns;
    };

    // Time points wait for the next event: of those before the block's
    // first event only the last (the tightest lower bound) is written, of
    // those after its last event only the first (the tightest upper bound),
    // so that a block's time range hugs its events even when it starts or
    // ends in a quiet spell.
    void event();
    void time(const TimePoint& point);
    void lineDelta(uint32_t from, uint32_t to);

    ZSTD_CCtx_s* context_;
    int level_;
    BlockHeader header_;
    std::string payload_;
    std::string compressed_;
    std::vector<TimePoint> pending_;
    int64_t lastNs_ = 0;
    bool timed_ = false;
};

}  // namespace vigil::trace
