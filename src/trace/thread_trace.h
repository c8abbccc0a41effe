// The recording side of one thread: the buffer its events are appended to,
// which only that thread writes and only the TraceWriter's thread reads.
//
// The buffer is a chain of fixed-size chunks of raw records (below). An
// append is two loads, a compare, the stores of the record and one store
// of the new end (a plain store on x86): no lock, no allocation, no system
// call. One compare covers three rare cases at once: the chunk is full, a
// timestamp is due, or the writer's thread asked for one (`limit_`, which
// the writer's thread may set to 0 at any time); all go through
// appendSlow(), which reads the clock, and on a full chunk takes a spare
// one and rings the writer's thread (a system call only if it sleeps). The
// writer's thread reads the published end of each buffer and takes
// whatever is complete, so the thread never waits for it and never hands
// anything over by hand: an idle thread's last records are taken too.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "trace/doorbell.h"

namespace vigil {

class TraceWriter;

namespace trace {

// A raw record is a first word (kind in the low 3 bits, a value in the high
// 29) and up to two more words:
//   line       value = line
//   call       value = code id; + line
//   return     -
//   exception  value = line
//   task       -; + task id low 32 bits, high 32 bits
//   stamp      value = ns >> 32; + ns low 32 bits: the time of the next record
//   mark       same as stamp: a time between two records (end of a chunk)
enum RawKind : uint32_t {
    kRawLine,
    kRawCall,
    kRawReturn,
    kRawException,
    kRawTask,
    kRawStamp,
    kRawMark
};
inline constexpr uint32_t kRawKindBits = 3;
inline constexpr uint32_t kRawValueMax = (1u << (32 - kRawKindBits)) - 1;
inline constexpr uint32_t kRawTimeWords = 2;
inline constexpr uint32_t kMaxRawRecordWords = 3;
// Values past 29 bits (a line beyond 536,870,911) are clamped.
inline uint32_t rawWord(RawKind kind, uint32_t value) {
    return std::min(value, kRawValueMax) << kRawKindBits | kind;
}

// 64 KiB: some 14,000 events of a typical mix, one block on disk.
inline constexpr uint32_t kChunkWords = 16384;
// A real timestamp at least this often (in words: about 50 events), so
// that interpolated times of a busy thread are within a few microseconds.
inline constexpr uint32_t kStampEveryWords = 64;

struct Chunk {
    // Set (release) by the owning thread when it has moved on to the next
    // chunk; `used` is final from then on (and once its ThreadTrace ended).
    std::atomic<Chunk*> next{nullptr};
    uint32_t used = 0;      // words, the closing mark included
    uint64_t sequence = 0;  // of the thread's chunks, from 0
    uint32_t words[kChunkWords];
};

// What the writer and all its threads share.
struct Recording {
    std::atomic<bool> stopped{false};  // appends are no-ops
    std::atomic<bool> starved{false};  // a thread found no buffer left: it stopped the recording
    std::atomic<int64_t> bufferedBytes{0};
    int64_t maxBufferedBytes = 0;
    Doorbell wake;  // to the writer's thread: a chunk is full, a flush, the end
};

}  // namespace trace

// Obtained from TraceWriter::thread(); its member functions may be called
// by the thread it was obtained for only.
// Once the recording stopped (disk full, buffers exhausted) the appends are
// no-ops that cost a function call.
class ThreadTrace {
  public:
    ThreadTrace(const ThreadTrace&) = delete;
    ThreadTrace& operator=(const ThreadTrace&) = delete;
    // Only the TraceWriter destroys one; this frees its spare chunks.
    ~ThreadTrace();

    // A frame starts running `code` (TraceWriter::defineCode) at `line`:
    // a call, or a generator or coroutine resumed.
    void call(uint32_t code, uint32_t line) {
        append<2>({trace::rawWord(trace::kRawCall, code), line});
    }
    // The innermost frame reaches `line`.
    void line(uint32_t line) { append<1>({trace::rawWord(trace::kRawLine, line)}); }
    // The innermost frame returns, yields or is unwound by an exception.
    // With no recorded frame left it is kept, and changes nothing.
    void ret() { append<1>({trace::kRawReturn}); }
    // An exception is raised in the innermost frame at `line`.
    void exception(uint32_t line) { append<1>({trace::rawWord(trace::kRawException, line)}); }
    // The thread now runs asyncio task `task` (an id of the capture side's
    // choosing; 0: no task). Events carry their task from here on.
    void taskSwitch(uint64_t task) {
        append<3>(
            {trace::kRawTask, static_cast<uint32_t>(task), static_cast<uint32_t>(task >> 32)});
    }

    // On: every event carries a real timestamp (one clock read per event,
    // some 20-30 ns, and about a byte more per event on disk). Off: one
    // every 64 words and one after each pass of the writer's thread, the
    // rest interpolated (docs/trace-format.md). Either way a time point
    // marks the switch.
    void precise(bool on);
    // The thread is ending: what it appended gets written and the writer
    // frees this object on its next pass. Nothing may use it after this.
    // Another thread may call it once the owner is known to append no more
    // (the agent's recorder, under the GIL, when it stops the recording).
    void end();

  private:
    friend class TraceWriter;

    ThreadTrace(trace::Recording& recording, uint32_t serial, int32_t nativeThreadId, bool precise);

    template <size_t N>
    void append(const std::array<uint32_t, N>& record) {
        uint32_t* at = pos_.load(std::memory_order_relaxed);
        if (reinterpret_cast<uintptr_t>(at + N) > limit_.load(std::memory_order_relaxed))
            [[unlikely]] {
            appendSlow(record.data(), N);
            return;
        }
        std::copy_n(record.data(), N, at);
        pos_.store(at + N, std::memory_order_release);
    }
    void appendSlow(const uint32_t* record, uint32_t size);
    void mark();
    uint32_t* room(uint32_t words, int64_t now);
    uint32_t* nextChunk(uint32_t* at, int64_t now);
    trace::Chunk* takeChunk();
    uint32_t* chunkEnd() const { return chunk_->words + trace::kChunkWords; }

    // The writer's thread: chunks back to their thread (false: the ring is
    // full), and asking for a timestamp on the next append.
    bool giveBack(trace::Chunk* chunk);
    void askForStamp() { limit_.store(0, std::memory_order_relaxed); }

    // Written by the owning thread, read by the writer's: one cache line.
    alignas(64) std::atomic<uint32_t*> pos_{nullptr};  // end of the published records
    // Appends that end past this take the slow path; the writer's thread
    // sets it to 0 to ask for a timestamp.
    std::atomic<uintptr_t> limit_{0};
    trace::Chunk* chunk_ = nullptr;  // the one being filled (owner only)
    bool precise_;
    trace::Recording& recording_;
    std::atomic<trace::Chunk*> first_{nullptr};
    std::atomic<bool> ended_{false};
    // Where pos_ points before the first chunk: a valid address to compare.
    uint32_t before_[trace::kMaxRawRecordWords] = {};

    // Written chunks on their way back: the writer's thread produces, the
    // owner consumes, each moving its own counter. Eight: enough for what a
    // thread fills while the writer's thread writes one, at any rate the
    // writer's thread keeps up with.
    static constexpr uint32_t kSpares = 8;
    alignas(64) std::array<trace::Chunk*, kSpares> spares_{};
    std::atomic<uint32_t> sparesIn_{0};
    std::atomic<uint32_t> sparesOut_{0};

    const uint32_t serial_;
    const int32_t nativeThreadId_;
};

}  // namespace vigil
