#include "trace/thread_trace.h"

#include <time.h>

#include <new>

#include "core/agent_state.h"

namespace vigil {

using namespace trace;

namespace {

uint32_t* putTime(uint32_t* at, RawKind kind, int64_t ns) {
    at[0] = static_cast<uint32_t>(static_cast<uint64_t>(ns) >> 32) << kRawKindBits | kind;
    at[1] = static_cast<uint32_t>(ns);
    return at + kRawTimeWords;
}

}  // namespace

ThreadTrace::ThreadTrace(Recording& recording, uint32_t serial, int32_t nativeThreadId,
                         bool precise)
    : precise_(precise), recording_(recording), serial_(serial), nativeThreadId_(nativeThreadId) {
    pos_.store(before_, std::memory_order_relaxed);
}

ThreadTrace::~ThreadTrace() {
    for (uint32_t i = sparesOut_.load(); i != sparesIn_.load(); ++i) {
        delete spares_[i % kSpares];
        recording_.bufferedBytes.fetch_sub(sizeof(Chunk), std::memory_order_relaxed);
    }
}

// Every record that takes this path carries a timestamp: the first of a
// chunk (so a block starts with a real time), every kStampEveryWords, the
// one the writer's thread asked for, or all of them in precise mode.
void ThreadTrace::appendSlow(const uint32_t* record, uint32_t size) {
    if (recording_.stopped.load(std::memory_order_relaxed)) {
        limit_.store(0, std::memory_order_relaxed);
        return;
    }
    int64_t now = clockNs(CLOCK_MONOTONIC);
    uint32_t* at = room(kRawTimeWords + size, now);
    if (!at) return;
    at = putTime(at, kRawStamp, now);
    std::copy_n(record, size, at);
    at += size;
    pos_.store(at, std::memory_order_release);
    // If the writer's thread asked for a stamp since this call began, the
    // request is overwritten: this record's stamp answers it.
    uint32_t* limit = std::min(at + kStampEveryWords, chunkEnd() - kRawTimeWords);
    limit_.store(precise_ ? 0 : reinterpret_cast<uintptr_t>(limit), std::memory_order_relaxed);
}

// Where `words` more words go: after the published end, or at the start of
// a new chunk when they would not leave room for the mark that closes this
// one; nullptr when there is no chunk to be had.
uint32_t* ThreadTrace::room(uint32_t words, int64_t now) {
    uint32_t* at = pos_.load(std::memory_order_relaxed);
    if (chunk_ && at + words <= chunkEnd() - kRawTimeWords) return at;
    return nextChunk(at, now);
}

// Closes the current chunk with a mark (so its block ends on a real time)
// and links a new one; nullptr when there is none to be had.
uint32_t* ThreadTrace::nextChunk(uint32_t* at, int64_t now) {
    Chunk* fresh = takeChunk();
    if (!fresh) {
        recording_.starved.store(true, std::memory_order_relaxed);
        recording_.stopped.store(true, std::memory_order_relaxed);
        limit_.store(0, std::memory_order_relaxed);
        return nullptr;
    }
    fresh->next.store(nullptr, std::memory_order_relaxed);
    fresh->used = 0;
    if (chunk_) {
        putTime(at, kRawMark, now);
        chunk_->used = static_cast<uint32_t>(at + kRawTimeWords - chunk_->words);
        fresh->sequence = chunk_->sequence + 1;
        chunk_->next.store(fresh, std::memory_order_release);
        recording_.wake.ring();
    } else {
        fresh->sequence = 0;
        first_.store(fresh, std::memory_order_release);
    }
    chunk_ = fresh;
    return fresh->words;
}

// A chunk the writer's thread gave back, else a new one within the budget.
Chunk* ThreadTrace::takeChunk() {
    uint32_t out = sparesOut_.load(std::memory_order_relaxed);
    if (out != sparesIn_.load(std::memory_order_acquire)) {
        Chunk* chunk = spares_[out % kSpares];
        sparesOut_.store(out + 1, std::memory_order_release);
        return chunk;
    }
    int64_t before = recording_.bufferedBytes.fetch_add(sizeof(Chunk), std::memory_order_relaxed);
    Chunk* chunk = before + static_cast<int64_t>(sizeof(Chunk)) <= recording_.maxBufferedBytes
                       ? new (std::nothrow) Chunk
                       : nullptr;
    if (!chunk) recording_.bufferedBytes.fetch_sub(sizeof(Chunk), std::memory_order_relaxed);
    return chunk;
}

bool ThreadTrace::giveBack(Chunk* chunk) {
    uint32_t in = sparesIn_.load(std::memory_order_relaxed);
    if (in - sparesOut_.load(std::memory_order_acquire) == kSpares) return false;
    spares_[in % kSpares] = chunk;
    sparesIn_.store(in + 1, std::memory_order_release);
    return true;
}

void ThreadTrace::precise(bool on) {
    precise_ = on;
    mark();
    limit_.store(0, std::memory_order_relaxed);
}

// A time point between the last record and the next: the events before a
// precise section are not spread over it, nor those after it.
void ThreadTrace::mark() {
    if (recording_.stopped.load(std::memory_order_relaxed)) return;
    int64_t now = clockNs(CLOCK_MONOTONIC);
    if (uint32_t* at = room(kRawTimeWords, now))
        pos_.store(putTime(at, kRawMark, now), std::memory_order_release);
}

void ThreadTrace::end() {
    if (chunk_) {
        uint32_t* at = pos_.load(std::memory_order_relaxed);
        putTime(at, kRawMark, clockNs(CLOCK_MONOTONIC));
        chunk_->used = static_cast<uint32_t>(at + kRawTimeWords - chunk_->words);
    }
    ended_.store(true, std::memory_order_release);
}

}  // namespace vigil
