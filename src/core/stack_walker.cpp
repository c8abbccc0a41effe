#include "core/stack_walker.h"

#include <algorithm>
#include <cstring>

namespace vigil {
namespace {

// Frames on the thread's data stack are owned by the thread; 3.12+: frames
// owned by the C stack are entry shims, not Python code
// (FRAME_OWNED_BY_CSTACK in
// https://github.com/python/cpython/blob/v3.12.1/Include/internal/pycore_frame.h).
constexpr uint8_t kFrameOwnedByThread = 0;
constexpr uint8_t kFrameOwnedByCStack = 3;

// A data stack chunk larger than this is not copied in one piece.
constexpr uint64_t kMaxChunkCopy = 1 << 20;
// Room left above the data stack's top when copying it, so that a slightly
// deeper stack next time is still inside the batched copy.
constexpr uint64_t kChunkSlack = 256;
// Thread states remembered; past this (threads come and go) start afresh.
constexpr size_t kMaxExpectations = 4096;
// Expected frames looked up before giving up on finding a moved frame.
constexpr size_t kMaxMisses = 8;
// Expected frames are read as one span with the span before them when they
// start on its last page or the page after: the kernel charges each place
// read (an iovec) more than a page more inside one place, and a page not
// needed more than a place.
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kMaxSpan = 64 * 1024;

template <typename T>
T field(const uint8_t* bytes, Offset offset) {
    T value;
    std::memcpy(&value, bytes + offset, sizeof(T));
    return value;
}

}  // namespace

StackWalker::StackWalker(MemorySource& memory, const PyLayout& layout, CodeCache& codes)
    : memory_(memory), layout_(layout), codes_(codes) {
    // Only the thread state's fields a walk uses are read: the whole struct
    // can straddle a page the kernel would have to pin as well.
    const PyLayout::Thread& thread = layout.thread;
    Offset stateEnd =
        std::max({thread.prev, thread.next, thread.interp, thread.frame, thread.cframe,
                  thread.thread_id, thread.native_thread_id, thread.datastack_chunk,
                  thread.datastack_top, thread.exc_info, thread.status});
    stateBuffer_.resize(static_cast<size_t>(stateEnd) + 8);
    Offset end = std::max({layout.object.ob_type, layout.frame.previous, layout.frame.code,
                           layout.frame.lasti, layout.frame.instr_ptr, layout.frame.owner});
    frameReadSize_ = static_cast<size_t>(end) + 8;
    frameBuffer_.resize(frameReadSize_);
    // The versions whose data stack walkDataStack() knows (not those newer
    // than our tables, see withoutShortcuts() in discovery.cpp).
    canWalkDataStack_ = layout.frameModel() == FrameModel::kInterpreterFrame &&
                        layout.thread.exc_info != kNone && layout.code.nlocalsplus != kNone;
}

void StackWalker::planFrameReads(const Expectation& expected) {
    // Frames allocated near each other (recursion, pymalloc pools) are read
    // as one span: the kernel's cost is per place read more than per byte.
    size_t count = expected.frames.size();
    order_.resize(count);
    for (size_t i = 0; i < count; ++i) order_[i] = i;
    std::sort(order_.begin(), order_.end(),
              [&](size_t a, size_t b) { return expected.frames[a] < expected.frames[b]; });
    spans_.clear();
    frameSpan_.resize(count);
    frameOffset_.resize(count);
    for (size_t i : order_) {
        uint64_t start = expected.frames[i];
        uint64_t end = start + frameReadSize_;
        bool extend = !spans_.empty() &&
                      start / kPageSize <= (spans_.back().end - 1) / kPageSize + 1 &&
                      end - spans_.back().start <= kMaxSpan;
        if (!extend) spans_.push_back({start, end, 0});
        spans_.back().end = std::max(spans_.back().end, end);
        frameSpan_[i] = spans_.size() - 1;
    }
    size_t offset = 0;
    for (Span& span : spans_) {
        span.bufferOffset = offset;
        offset += span.end - span.start;
    }
    expectedFrames_.resize(offset);
    for (size_t i = 0; i < count; ++i) {
        const Span& span = spans_[frameSpan_[i]];
        frameOffset_[i] = span.bufferOffset + (expected.frames[i] - span.start);
    }
}

size_t StackWalker::batchRead(uint64_t threadState, const Expectation& expected,
                              std::span<const ReadRequest> extra) {
    requests_.assign(extra.begin(), extra.end());
    requests_.push_back({threadState, stateBuffer_.data(), stateBuffer_.size()});
    if (layout_.thread.cframe != kNone && expected.cframe) {
        requests_.push_back(
            {expected.cframe + layout_.thread.cframe_current_frame, &cframeFrame_, 8});
    }
    if (expected.chunk) {
        chunkBuffer_.resize(expected.chunkBytes);
        requests_.push_back({expected.chunk, chunkBuffer_.data(), expected.chunkBytes});
    }
    size_t firstSpan = requests_.size();
    planFrameReads(expected);
    for (const Span& span : spans_) {
        requests_.push_back(
            {span.start, expectedFrames_.data() + span.bufferOffset, span.end - span.start});
    }
    size_t read = memory_.readMany(requests_);
    spansRead_ = read > firstSpan ? read - firstSpan : 0;
    expectedNext_ = expectedMisses_ = 0;
    seenFrames_.clear();
    // What callers count: the thread state and what follows it.
    return read > extra.size() ? read - extra.size() : 0;
}

void StackWalker::parseThreadState(uint64_t address, ThreadStateView& view) {
    const uint8_t* bytes = stateBuffer_.data();
    view.address = address;
    view.prev = field<uint64_t>(bytes, layout_.thread.prev);
    view.next = field<uint64_t>(bytes, layout_.thread.next);
    view.interp = field<uint64_t>(bytes, layout_.thread.interp);
    view.threadId = field<uint64_t>(bytes, layout_.thread.thread_id);
    view.nativeThreadId =
        layout_.thread.native_thread_id == kNone
            ? -1
            : static_cast<int64_t>(field<uint64_t>(bytes, layout_.thread.native_thread_id));
    view.datastackChunk = layout_.thread.datastack_chunk != kNone
                              ? field<uint64_t>(bytes, layout_.thread.datastack_chunk)
                              : 0;
    view.datastackTop = layout_.thread.datastack_top != kNone
                            ? field<uint64_t>(bytes, layout_.thread.datastack_top)
                            : 0;
    view.excInfo =
        layout_.thread.exc_info != kNone ? field<uint64_t>(bytes, layout_.thread.exc_info) : 0;
    if (layout_.thread.status != kNone) {
        view.holdsGil =
            (field<uint32_t>(bytes, layout_.thread.status) >> layout_.thread.holds_gil_bit) & 1u;
    }
}

bool StackWalker::currentFrame(Expectation& expected, bool cframeRead, ThreadStateView& view) {
    if (layout_.thread.cframe == kNone) {
        view.frame = field<uint64_t>(stateBuffer_.data(), layout_.thread.frame);
        return true;
    }
    // 3.11-3.12: the frame hangs off the _PyCFrame of the running eval loop,
    // which stays put while the thread stays in that loop.
    uint64_t cframe = field<uint64_t>(stateBuffer_.data(), layout_.thread.cframe);
    bool expectedHit = cframeRead && cframe == expected.cframe;
    expected.cframe = cframe;
    view.frame = 0;
    if (cframe == 0) return true;
    if (expectedHit) {
        view.frame = cframeFrame_;
        return true;
    }
    return memory_.readPointer(cframe + layout_.thread.cframe_current_frame, view.frame);
}

WalkStatus StackWalker::walk(uint64_t threadState, ThreadStateView& view,
                             std::vector<RawFrame>& frames, std::span<const ReadRequest> extra) {
    frames.clear();
    if (expected_.size() > kMaxExpectations) expected_.clear();
    Expectation& expected = expected_[threadState];
    size_t read = batchRead(threadState, expected, extra);
    if (read == 0) {
        expected_.erase(threadState);
        return WalkStatus::kUnreadable;
    }
    parseThreadState(threadState, view);
    bool cframeRead = layout_.thread.cframe != kNone && expected.cframe && read > 1;
    bool chunkRead = expected.chunk && read > (cframeRead ? 2u : 1u);
    WalkStatus status = WalkStatus::kTorn;
    if (layout_.frameModel() == FrameModel::kInterpreterFrame) {
        useDataStack(view, expected, chunkRead);
        if (dataStackHoldsWholeStack(view)) status = walkDataStack(view, frames, expected);
        if (status == WalkStatus::kTorn) {
            if (!currentFrame(expected, cframeRead, view)) return WalkStatus::kTorn;
            status = walkInterpreterFrames(view, expected, frames);
        }
    } else {
        if (!currentFrame(expected, cframeRead, view)) return WalkStatus::kTorn;
        status = walkFrameObjects(view.frame, expected, frames);
    }
    expected.frames.swap(seenFrames_);
    return status;
}

bool StackWalker::frameUnchanged(const ThreadStateView& thread) {
    uint64_t frame = 0;
    if (layout_.thread.cframe == kNone) {
        return memory_.readPointer(thread.address + layout_.thread.frame, frame) &&
               frame == thread.frame;
    }
    uint64_t cframe = 0;
    if (!memory_.readPointer(thread.address + layout_.thread.cframe, cframe)) return false;
    if (cframe == 0) return thread.frame == 0;
    return memory_.readPointer(cframe + layout_.thread.cframe_current_frame, frame) &&
           frame == thread.frame;
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

WalkStatus StackWalker::walkFrameObjects(uint64_t frame, const Expectation& expected,
                                         std::vector<RawFrame>& frames) {
    // 3.10 counts f_lasti in code units, 3.8-3.9 in bytes.
    int unit = layout_.version.atLeast(3, 10) ? 2 : 1;
    while (frame != 0) {
        if (frames.size() >= kMaxDepth) return WalkStatus::kTorn;
        const uint8_t* bytes = frameBytes(frame, expected);
        if (!bytes || !isFrameType(field<uint64_t>(bytes, layout_.object.ob_type)))
            return WalkStatus::kTorn;
        uint64_t code = field<uint64_t>(bytes, layout_.frame.code);
        const CodeInfo* info = codes_.get(code);
        if (!info) return WalkStatus::kTorn;
        int32_t lasti = field<int32_t>(bytes, layout_.frame.lasti);
        frames.push_back({code, frame, lasti < 0 ? -1 : int64_t{lasti} * unit, info});
        frame = field<uint64_t>(bytes, layout_.frame.previous);
    }
    return WalkStatus::kComplete;
}

void StackWalker::useDataStack(const ThreadStateView& thread, Expectation& expected,
                               bool chunkRead) {
    chunkStart_ = chunkEnd_ = 0;
    uint64_t start = thread.datastackChunk;
    uint64_t end = thread.datastackTop;
    if (start == 0 || end <= start || end - start > kMaxChunkCopy) {
        expected.chunk = 0;
        return;
    }
    bool hit = chunkRead && start == expected.chunk && end - start <= expected.chunkBytes;
    if (!hit) {
        chunkBuffer_.resize(end - start);
        if (!memory_.read(start, chunkBuffer_.data(), end - start)) {
            expected.chunk = 0;
            return;
        }
        // Next time copy a little more than now, but never past the chunk.
        uint64_t chunkSize = field<uint64_t>(chunkBuffer_.data(), layout_.chunk.size);
        expected.chunk = start;
        expected.chunkBytes = std::min(end - start + kChunkSlack, std::max(chunkSize, end - start));
    }
    chunkStart_ = start;
    chunkEnd_ = end;
}

const uint8_t* StackWalker::frameBytes(uint64_t frame, const Expectation& expected) {
    if (frame >= chunkStart_ && frame < chunkEnd_ && chunkEnd_ - frame >= frameReadSize_) {
        return chunkBuffer_.data() + (frame - chunkStart_);
    }
    // Frame objects, generator frames and entry shims: a frame still where
    // the last walk saw it was read in the batch; others are read now.
    seenFrames_.push_back(frame);
    size_t count = expected.frames.size();
    for (size_t j = expectedNext_; j < count && expectedMisses_ < kMaxMisses; ++j) {
        if (expected.frames[j] == frame && frameSpan_[j] < spansRead_) {
            expectedNext_ = j + 1;
            return expectedFrames_.data() + frameOffset_[j];
        }
    }
    ++expectedMisses_;
    if (!memory_.read(frame, frameBuffer_.data(), frameReadSize_)) return nullptr;
    return frameBuffer_.data();
}

bool StackWalker::dataStackHoldsWholeStack(const ThreadStateView& thread) const {
    // While no generator runs on the thread (gen_send_ex2, and on 3.12+
    // FOR_ITER_GEN and SEND_GEN, point exc_info into the generator), every
    // frame of its stack is on its data stack, in call order, and nothing
    // else is: entry shims live on the C stack. If that stack is one chunk,
    // the chunk alone gives the whole stack, without the current frame
    // pointer (on the C stack before 3.13) or the shims.
    return canWalkDataStack_ && chunkStart_ != 0 &&
           thread.excInfo == thread.address + layout_.thread.exc_state &&
           field<uint64_t>(chunkBuffer_.data(), layout_.chunk.previous) == 0;
}

WalkStatus StackWalker::walkDataStack(ThreadStateView& thread, std::vector<RawFrame>& frames,
                                      Expectation& expected) {
    WalkStatus status = walkChunk(thread, frames);
    if (status == WalkStatus::kTorn) {
        // A frame size that misleads is most often a stale code: freed, and
        // another allocated at its address since it was decoded (imports at
        // start-up do that all the time). Have them checked next round; the
        // caller follows the frame chain this time.
        for (const RawFrame& frame : frames) codes_.suspect(frame.code);
        frames.clear();
        return status;
    }
    expected.cframe = 0;  // not needed: leave it out of the next batch
    return status;
}

WalkStatus StackWalker::walkChunk(ThreadStateView& thread, std::vector<RawFrame>& frames) {
    // Frames are laid end to end from the bottom, each as large as its code
    // says; the first chunk keeps its first slot empty (push_chunk in
    // https://github.com/python/cpython/blob/v3.12.1/Python/pystate.c).
    uint64_t frame = chunkStart_ + layout_.chunk.data + 8;
    while (frame < chunkEnd_) {
        if (frames.size() >= kMaxDepth || chunkEnd_ - frame < frameReadSize_)
            return WalkStatus::kTorn;
        const uint8_t* bytes = chunkBuffer_.data() + (frame - chunkStart_);
        if (field<uint8_t>(bytes, layout_.frame.owner) != kFrameOwnedByThread)
            return WalkStatus::kTorn;
        uint64_t code = field<uint64_t>(bytes, layout_.frame.code);
        const CodeInfo* info = codes_.get(code);
        if (!info || info->frameBytes == 0) return WalkStatus::kTorn;
        frames.push_back(interpreterFrame(frame, bytes, info));
        frame += info->frameBytes;
    }
    // A frame being pushed or popped meanwhile shows as a walk that does not
    // end exactly at the top.
    if (frame != chunkEnd_) return WalkStatus::kTorn;
    std::reverse(frames.begin(), frames.end());
    thread.frame = frames.empty() ? 0 : frames.front().address;
    return WalkStatus::kComplete;
}

RawFrame StackWalker::interpreterFrame(uint64_t frame, const uint8_t* bytes,
                                       const CodeInfo* info) const {
    uint64_t instruction = field<uint64_t>(bytes, layout_.frame.instr_ptr);
    return {field<uint64_t>(bytes, layout_.frame.code), frame,
            static_cast<int64_t>(instruction - info->bytecodeStart), info};
}

WalkStatus StackWalker::walkInterpreterFrames(const ThreadStateView& thread,
                                              const Expectation& expected,
                                              std::vector<RawFrame>& frames) {
    bool hasShims = layout_.version.atLeast(3, 12);
    uint64_t frame = thread.frame;
    size_t visited = 0;
    while (frame != 0) {
        if (++visited > kMaxDepth) return WalkStatus::kTorn;
        const uint8_t* bytes = frameBytes(frame, expected);
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
        frames.push_back(interpreterFrame(frame, bytes, info));
        frame = previous;
    }
    return WalkStatus::kComplete;
}

}  // namespace vigil
