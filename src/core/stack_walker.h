// Walks the Python frames of one thread state, innermost first.
//
// The hot path of both `dump` and `record`: frames are returned by value in a
// caller-owned vector that is reused between walks, and on 3.11+ the thread's
// data stack is copied in one read and decoded locally
// (https://github.com/python/cpython/blob/v3.11.7/Include/internal/pycore_frame.h).
#pragma once

#include <cstdint>
#include <vector>

#include "core/code_cache.h"
#include "core/layout.h"
#include "core/memory.h"

namespace vigil {

struct RawFrame {
    uint64_t code = 0;          // code object address
    uint64_t address = 0;       // frame address in the target
    int64_t byteOffset = -1;    // offset of the current instruction in the bytecode
};

// What a thread state says about its thread, read in one go.
struct ThreadStateView {
    uint64_t address = 0;
    uint64_t next = 0;
    uint64_t interp = 0;
    uint64_t threadId = 0;        // pthread_t, threading.get_ident()
    int64_t nativeThreadId = -1;  // 3.11+, else -1
    uint64_t frame = 0;           // the innermost frame
    uint64_t datastackChunk = 0;  // 3.11+: the current _PyStackChunk
    uint64_t datastackTop = 0;    // 3.11+: first free byte of that chunk
};

enum class WalkStatus {
    kComplete,
    kTorn,        // the stack changed while it was read; try again
    kUnreadable,  // the thread state itself could not be read
};

class StackWalker {
public:
    StackWalker(MemorySource& memory, const PyLayout& layout, CodeCache& codes);

    // Reads the thread state at address; false when it cannot be read.
    bool readThreadState(uint64_t address, ThreadStateView& out);

    // Fills frames (cleared first) with the thread's stack, innermost first.
    WalkStatus walk(const ThreadStateView& thread, std::vector<RawFrame>& frames);

    // Reads the thread's innermost frame pointer again: if it moved, the walk
    // may mix two stacks.
    bool frameUnchanged(const ThreadStateView& thread);

    // Deepest stack walked before the walk is declared torn (a cycle).
    static constexpr size_t kMaxDepth = 1 << 16;

private:
    bool currentFrame(const uint8_t* stateBytes, uint64_t& frame);
    WalkStatus walkFrameObjects(uint64_t frame, std::vector<RawFrame>& frames);
    WalkStatus walkInterpreterFrames(const ThreadStateView& thread, std::vector<RawFrame>& frames);
    void copyDataStack(const ThreadStateView& thread);
    const uint8_t* frameBytes(uint64_t frame);
    bool isFrameType(uint64_t type);

    MemorySource& memory_;
    const PyLayout& layout_;
    CodeCache& codes_;
    // Reused between walks: the copied data stack and single-frame reads.
    std::vector<uint8_t> stateBuffer_;
    std::vector<uint8_t> chunkBuffer_;
    uint64_t chunkStart_ = 0;
    uint64_t chunkEnd_ = 0;
    std::vector<uint8_t> frameBuffer_;
    size_t frameReadSize_ = 0;
    uint64_t frameType_ = 0;  // PyFrame_Type in the target, learnt from the first frame  // the prefix of a frame that holds what we read
};

}  // namespace vigil
