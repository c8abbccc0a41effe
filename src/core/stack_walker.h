// Walks the Python frames of one thread state, innermost first.
//
// The hot path of both `dump` and `record`. Frames are returned by value in
// a caller-owned vector reused between walks, and a walk costs as few system
// calls as possible: each thread state remembers where its frames were last
// time (an Expectation), and the next walk reads the thread state together
// with all those places in one batched read. Only what moved since is read
// again. On 3.11+ the expected part of the thread's data stack is copied in
// the same batch and frames are decoded from the copy
// (https://github.com/python/cpython/blob/v3.11.7/Include/internal/pycore_frame.h).
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/code_cache.h"
#include "core/layout.h"
#include "core/memory.h"

namespace vigil {

struct RawFrame {
    uint64_t code = 0;        // code object address
    uint64_t address = 0;     // frame address in the target
    int64_t byteOffset = -1;  // offset of the current instruction in the bytecode
    // The decoded code object: valid until the CodeCache next verifies.
    const CodeInfo* info = nullptr;
};

// What a thread state says about its thread, read in one go.
struct ThreadStateView {
    uint64_t address = 0;
    uint64_t prev = 0;  // 0 for the head of its interpreter's list
    uint64_t next = 0;
    uint64_t interp = 0;
    uint64_t threadId = 0;         // pthread_t, threading.get_ident()
    int64_t nativeThreadId = -1;   // 3.11+, else -1
    uint64_t frame = 0;            // the innermost frame
    uint64_t datastackChunk = 0;   // 3.11+: the current _PyStackChunk
    uint64_t datastackTop = 0;     // 3.11+: first free byte of that chunk
    uint64_t excInfo = 0;          // a generator runs if this is not the thread's own exc_state
    std::optional<bool> holdsGil;  // 3.12+: the thread says whether it holds the GIL
};

enum class WalkStatus {
    kComplete,
    kTorn,        // the stack changed while it was read; try again
    kUnreadable,  // the thread state itself could not be read
};

class StackWalker {
  public:
    StackWalker(MemorySource& memory, const PyLayout& layout, CodeCache& codes);

    // Reads the thread state at threadState into view and fills frames
    // (cleared first) with its stack, innermost first. The extra requests, if
    // any, are read first in the same batch (the sampler reads the
    // interpreter's thread list and GIL that way); they must all succeed.
    WalkStatus walk(uint64_t threadState, ThreadStateView& view, std::vector<RawFrame>& frames,
                    std::span<const ReadRequest> extra = {});

    // Reads the thread's innermost frame pointer again: if it moved, the walk
    // may mix two moments of the stack.
    bool frameUnchanged(const ThreadStateView& thread);

    // Deepest stack walked before the walk is declared torn (a cycle).
    static constexpr size_t kMaxDepth = 1 << 16;

  private:
    // Where a thread state's frames were at its last walk.
    struct Expectation {
        // Frames that are not in a copied data stack (all of them before
        // 3.11; generator frames and entry shims after), innermost first.
        std::vector<uint64_t> frames;
        uint64_t cframe = 0;    // 3.11-3.12: the _PyCFrame last seen
        uint64_t chunk = 0;     // 3.11+: the data stack chunk last seen
        size_t chunkBytes = 0;  // how much of it to copy
    };

    struct Span {
        uint64_t start;
        uint64_t end;
        size_t bufferOffset;
    };

    void planFrameReads(const Expectation& expected);
    size_t batchRead(uint64_t threadState, const Expectation& expected,
                     std::span<const ReadRequest> extra);
    void parseThreadState(uint64_t address, ThreadStateView& view);
    bool currentFrame(Expectation& expected, bool cframeRead, ThreadStateView& view);
    WalkStatus walkFrameObjects(uint64_t frame, const Expectation& expected,
                                std::vector<RawFrame>& frames);
    WalkStatus walkInterpreterFrames(const ThreadStateView& thread, const Expectation& expected,
                                     std::vector<RawFrame>& frames);
    void useDataStack(const ThreadStateView& thread, Expectation& expected, bool chunkRead);
    bool dataStackHoldsWholeStack(const ThreadStateView& thread) const;
    WalkStatus walkDataStack(ThreadStateView& thread, std::vector<RawFrame>& frames,
                             Expectation& expected);
    WalkStatus walkChunk(ThreadStateView& thread, std::vector<RawFrame>& frames);
    RawFrame interpreterFrame(uint64_t frame, const uint8_t* bytes, const CodeInfo* info) const;
    const uint8_t* frameBytes(uint64_t frame, const Expectation& expected);
    bool isFrameType(uint64_t type);

    MemorySource& memory_;
    const PyLayout& layout_;
    CodeCache& codes_;
    size_t frameReadSize_ = 0;  // the prefix of a frame that holds what we read
    uint64_t frameType_ = 0;    // PyFrame_Type in the target, learnt from the first frame
    bool canWalkDataStack_ = false;
    std::unordered_map<uint64_t, Expectation> expected_;
    // Reused between walks.
    std::vector<ReadRequest> requests_;
    std::vector<uint8_t> stateBuffer_;
    uint64_t cframeFrame_ = 0;
    std::vector<uint8_t> expectedFrames_;  // the spans of expected frames read in the batch
    std::vector<size_t> order_;
    std::vector<Span> spans_;
    std::vector<size_t> frameSpan_;    // expected frame -> its span
    std::vector<size_t> frameOffset_;  // expected frame -> its bytes in expectedFrames_
    size_t spansRead_ = 0;             // how many spans the batch read
    size_t expectedNext_ = 0;          // where to look for the next frame
    size_t expectedMisses_ = 0;
    std::vector<uint64_t> seenFrames_;  // frames read outside the data stack this walk
    std::vector<uint8_t> chunkBuffer_;
    uint64_t chunkStart_ = 0;
    uint64_t chunkEnd_ = 0;
    std::vector<uint8_t> frameBuffer_;
};

}  // namespace vigil
