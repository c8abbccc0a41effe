#include "core/stack_walker.h"

#include <algorithm>
#include <cstring>

namespace vigil {
namespace {

// 3.12+: frames owned by the C stack are entry shims, not Python code
// (FRAME_OWNED_BY_CSTACK in
// https://github.com/python/cpython/blob/v3.12.1/Include/internal/pycore_frame.h).
constexpr uint8_t kFrameOwnedByCStack = 3;

// A data stack chunk larger than this is not copied in one piece.
constexpr uint64_t kMaxChunkCopy = 1 << 20;

template <typename T>
T field(const uint8_t* bytes, Offset offset) {
    T value;
    std::memcpy(&value, bytes + offset, sizeof(T));
    return value;
}

}  // namespace

StackWalker::StackWalker(MemorySource& memory, const PyLayout& layout, CodeCache& codes)
    : memory_(memory), layout_(layout), codes_(codes) {
    stateBuffer_.resize(layout.thread.size);
    Offset end = std::max({layout.object.ob_type, layout.frame.previous, layout.frame.code, layout.frame.lasti,
                           layout.frame.instr_ptr, layout.frame.owner});
    frameReadSize_ = static_cast<size_t>(end) + 8;
    frameBuffer_.resize(frameReadSize_);
}

bool StackWalker::currentFrame(const uint8_t* stateBytes, uint64_t& frame) {
    if (layout_.thread.cframe == kNone) {
        frame = field<uint64_t>(stateBytes, layout_.thread.frame);
        return true;
    }
    // 3.11-3.12: the frame hangs off the _PyCFrame of the running eval loop.
    uint64_t cframe = field<uint64_t>(stateBytes, layout_.thread.cframe);
    frame = 0;
    return cframe == 0 || memory_.readPointer(cframe + layout_.thread.cframe_current_frame, frame);
}

bool StackWalker::readThreadState(uint64_t address, ThreadStateView& out) {
    if (!memory_.read(address, stateBuffer_.data(), stateBuffer_.size())) return false;
    const uint8_t* bytes = stateBuffer_.data();
    out.address = address;
    out.next = field<uint64_t>(bytes, layout_.thread.next);
    out.interp = field<uint64_t>(bytes, layout_.thread.interp);
    out.threadId = field<uint64_t>(bytes, layout_.thread.thread_id);
    out.nativeThreadId = layout_.thread.native_thread_id == kNone
                             ? -1
                             : static_cast<int64_t>(field<uint64_t>(bytes, layout_.thread.native_thread_id));
    if (layout_.thread.datastack_chunk != kNone) {
        out.datastackChunk = field<uint64_t>(bytes, layout_.thread.datastack_chunk);
        out.datastackTop = layout_.thread.datastack_top != kNone
                               ? field<uint64_t>(bytes, layout_.thread.datastack_top)
                               : 0;
    }
    return currentFrame(bytes, out.frame);
}

bool StackWalker::frameUnchanged(const ThreadStateView& thread) {
    uint64_t frame = 0;
    if (layout_.thread.cframe == kNone) {
        return memory_.readPointer(thread.address + layout_.thread.frame, frame) && frame == thread.frame;
    }
    uint64_t cframe = 0;
    if (!memory_.readPointer(thread.address + layout_.thread.cframe, cframe)) return false;
    if (cframe == 0) return thread.frame == 0;
    return memory_.readPointer(cframe + layout_.thread.cframe_current_frame, frame) &&
           frame == thread.frame;
}

WalkStatus StackWalker::walk(const ThreadStateView& thread, std::vector<RawFrame>& frames) {
    frames.clear();
    if (layout_.frameModel() == FrameModel::kFrameObject) return walkFrameObjects(thread.frame, frames);
    return walkInterpreterFrames(thread, frames);
}

WalkStatus StackWalker::walkFrameObjects(uint64_t frame, std::vector<RawFrame>& frames) {
    // 3.10 counts f_lasti in code units, 3.8-3.9 in bytes.
    int unit = layout_.version.atLeast(3, 10) ? 2 : 1;
    while (frame != 0) {
        if (frames.size() >= kMaxDepth) return WalkStatus::kTorn;
        if (!memory_.read(frame, frameBuffer_.data(), frameReadSize_)) return WalkStatus::kTorn;
        const uint8_t* bytes = frameBuffer_.data();
        if (!isFrameType(field<uint64_t>(bytes, layout_.object.ob_type))) return WalkStatus::kTorn;
        uint64_t code = field<uint64_t>(bytes, layout_.frame.code);
        if (!codes_.get(code)) return WalkStatus::kTorn;
        int32_t lasti = field<int32_t>(bytes, layout_.frame.lasti);
        frames.push_back({code, frame, lasti < 0 ? -1 : int64_t{lasti} * unit});
        frame = field<uint64_t>(bytes, layout_.frame.previous);
    }
    return WalkStatus::kComplete;
}

bool StackWalker::isFrameType(uint64_t type) {
    if (type == frameType_) return true;
    if (frameType_ != 0 || type == 0) return false;
    // The first frame object seen names the frame type; later ones must match.
    uint64_t namePointer = 0;
    if (!memory_.readPointer(type + layout_.type.tp_name, namePointer) ||
        memory_.readCString(namePointer, 16) != "frame") {
        return false;
    }
    frameType_ = type;
    return true;
}

void StackWalker::copyDataStack(const ThreadStateView& thread) {
    chunkStart_ = chunkEnd_ = 0;
    uint64_t start = thread.datastackChunk;
    uint64_t end = thread.datastackTop;
    if (start == 0 || end <= start || end - start > kMaxChunkCopy) return;
    chunkBuffer_.resize(end - start);
    if (!memory_.read(start, chunkBuffer_.data(), end - start)) return;
    chunkStart_ = start;
    chunkEnd_ = end;
}

const uint8_t* StackWalker::frameBytes(uint64_t frame) {
    if (frame >= chunkStart_ && frame + frameReadSize_ <= chunkEnd_) {
        return chunkBuffer_.data() + (frame - chunkStart_);
    }
    // Generator and coroutine frames live in their objects, older frames in
    // earlier chunks: read those one by one.
    if (!memory_.read(frame, frameBuffer_.data(), frameReadSize_)) return nullptr;
    return frameBuffer_.data();
}

WalkStatus StackWalker::walkInterpreterFrames(const ThreadStateView& thread,
                                              std::vector<RawFrame>& frames) {
    bool hasShims = layout_.version.atLeast(3, 12);
    copyDataStack(thread);
    uint64_t frame = thread.frame;
    size_t visited = 0;
    while (frame != 0) {
        if (++visited > kMaxDepth) return WalkStatus::kTorn;
        const uint8_t* bytes = frameBytes(frame);
        if (!bytes) return WalkStatus::kTorn;
        uint64_t previous = field<uint64_t>(bytes, layout_.frame.previous);
        uint8_t owner = field<uint8_t>(bytes, layout_.frame.owner);
        if (owner > kFrameOwnedByCStack) return WalkStatus::kTorn;
        if (hasShims && owner == kFrameOwnedByCStack) {
            frame = previous;
            continue;
        }
        uint64_t code = field<uint64_t>(bytes, layout_.frame.code);
        const CodeInfo* info = codes_.get(code);
        if (!info) return WalkStatus::kTorn;
        uint64_t instruction = field<uint64_t>(bytes, layout_.frame.instr_ptr);
        int64_t offset = static_cast<int64_t>(instruction - info->bytecodeStart);
        frames.push_back({code, frame, offset});
        frame = previous;
    }
    return WalkStatus::kComplete;
}

}  // namespace vigil
