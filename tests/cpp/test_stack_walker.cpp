// The stack walker on fake 3.10 frame chains: normal, cyclic (torn), garbage;
// and on fake 3.12 data stacks: walked alone when they hold the whole stack,
// through the frame chain otherwise.
#include <gtest/gtest.h>

#include "core/code_cache.h"
#include "core/objects.h"
#include "core/stack_walker.h"
#include "fake_process.h"

namespace vigil {
namespace {

// A fake process of one minor version and a walker over it.
template <int Minor>
class FakeWalkerTest : public ::testing::Test {
  protected:
    FakeWalkerTest()
        : fake_(*generatedLayout(3, Minor)),
          memory_(fake_.memory()),
          objects_(memory_, fake_.layout()),
          codes_(objects_, strings_),
          walker_(memory_, fake_.layout(), codes_) {}

    testing::FakeProcess fake_;
    BufferMemory memory_;
    StringTable strings_;
    ObjectReader objects_;
    CodeCache codes_;
    StackWalker walker_;
    std::vector<RawFrame> frames_;
    ThreadStateView view_;
};

class WalkerTest : public FakeWalkerTest<10> {
  protected:
    // A chain of frames, outermost first in names; returns the innermost.
    uint64_t chain(const std::vector<std::string>& names) {
        uint64_t frame = 0;
        for (const std::string& name : names)
            frame = fake_.frameObject(fake_.code(name, "app.py", 10), frame);
        return frame;
    }
};

TEST_F(WalkerTest, WalksInnermostFirst) {
    uint64_t state = fake_.threadState(0x1234, chain({"main", "handle", "query"}));
    uint64_t readsBefore = memory_.readCount();
    ASSERT_EQ(walker_.walk(state, view_, frames_), WalkStatus::kComplete);
    uint64_t firstWalkReads = memory_.readCount() - readsBefore;
    ASSERT_EQ(frames_.size(), 3u);
    EXPECT_EQ(strings_.get(codes_.get(frames_[0].code)->name), "query");
    EXPECT_EQ(strings_.get(codes_.get(frames_[2].code)->name), "main");
    EXPECT_EQ(strings_.get(codes_.get(frames_[0].code)->filename), "app.py");
    EXPECT_EQ(view_.interp, 0x1234u);
    // Walking again reads the thread state and the frames seen last time in
    // one batch (BufferMemory counts each span of it), and nothing else.
    readsBefore = memory_.readCount();
    ASSERT_EQ(walker_.walk(state, view_, frames_), WalkStatus::kComplete);
    EXPECT_EQ(frames_.size(), 3u);
    EXPECT_LT(memory_.readCount() - readsBefore, firstWalkReads);
    EXPECT_LE(memory_.readCount() - readsBefore, 1u + 3u);
}

TEST_F(WalkerTest, CycleIsTornNotAHang) {
    uint64_t inner = chain({"a", "b"});
    uint64_t outer = 0;
    memory_.readPointer(inner + fake_.layout().frame.previous, outer);
    fake_.put(outer + fake_.layout().frame.previous, inner);  // b -> a -> b -> ...
    uint64_t state = fake_.threadState(0x1234, inner);
    EXPECT_EQ(walker_.walk(state, view_, frames_), WalkStatus::kTorn);
}

TEST_F(WalkerTest, GarbageFramePointerIsTorn) {
    uint64_t inner = chain({"a"});
    fake_.put(inner + fake_.layout().frame.previous, uint64_t{0xdead0000});
    EXPECT_EQ(walker_.walk(fake_.threadState(0x1234, inner), view_, frames_), WalkStatus::kTorn);
}

TEST_F(WalkerTest, FrameWhoseCodeIsNotCodeIsTorn) {
    uint64_t inner = chain({"a"});
    fake_.put(inner + fake_.layout().frame.code, fake_.str("not code"));
    EXPECT_EQ(walker_.walk(fake_.threadState(0x1234, inner), view_, frames_), WalkStatus::kTorn);
}

TEST_F(WalkerTest, FrameWhoseCodeWasFreedIsTorn) {
    // pymalloc links a freed block into its pool's free list through its
    // first word: the code's fields, names included, still look intact.
    uint64_t inner = chain({"a"});
    uint64_t code = fake_.get<uint64_t>(inner + fake_.layout().frame.code);
    fake_.put(code + fake_.layout().object.ob_type - 8, uint64_t{0x7f3a12345a40});
    EXPECT_EQ(walker_.walk(fake_.threadState(0x1234, inner), view_, frames_), WalkStatus::kTorn);
}

TEST_F(WalkerTest, UnreadableThreadState) {
    EXPECT_EQ(walker_.walk(0x10, view_, frames_), WalkStatus::kUnreadable);
}

TEST_F(WalkerTest, ThreadWithoutFrames) {
    ASSERT_EQ(walker_.walk(fake_.threadState(0x1234, 0), view_, frames_), WalkStatus::kComplete);
    EXPECT_TRUE(frames_.empty());
}

TEST_F(WalkerTest, FrameMovedUnderUsIsDetected) {
    uint64_t state = fake_.threadState(0x1234, chain({"a", "b"}));
    ASSERT_EQ(walker_.walk(state, view_, frames_), WalkStatus::kComplete);
    EXPECT_TRUE(walker_.frameUnchanged(view_));
    fake_.put(state + fake_.layout().thread.frame, chain({"c"}));
    EXPECT_FALSE(walker_.frameUnchanged(view_));
}

class WalkerDataStackTest : public FakeWalkerTest<12> {
  protected:
    using DataStack = testing::FakeProcess::DataStack;

    WalkerDataStackTest() : cStack_(fake_.cStack()) {}

    // Frames of these functions, outermost first, each code with its own
    // frame size, on a chunk above previousChunk (or the root chunk, above
    // the entry shim); the innermost becomes the current frame.
    DataStack stack(const std::vector<std::string>& names,
                    const DataStack* previousChunk = nullptr) {
        std::vector<uint64_t> codes;
        for (int32_t i = 0; i < int32_t(names.size()); ++i)
            codes.push_back(fake_.code(names[i], "app.py", 10, i + 1, 2 * i + 3));
        DataStack stack = previousChunk ? fake_.dataStack(codes, previousChunk->frames.back(),
                                                          previousChunk->chunk)
                                        : fake_.dataStack(codes, cStack_.shim);
        setCurrentFrame(stack.frames.back());
        return stack;
    }
    void setCurrentFrame(uint64_t frame) {
        fake_.put(cStack_.cframe + fake_.layout().thread.cframe_current_frame, frame);
    }
    // The names of the frames walked, innermost first.
    std::vector<std::string> names() {
        std::vector<std::string> out;
        for (const RawFrame& frame : frames_) out.push_back(strings_.get(frame.info->name));
        return out;
    }

    testing::FakeProcess::CStack cStack_;
};

TEST_F(WalkerDataStackTest, RootChunkIsWalkedWithoutTheCStack) {
    DataStack data = stack({"main", "handle", "query"});
    // The chain walk would need the _PyCFrame: make it unreadable.
    uint64_t state = fake_.dataStackThread(0xdead0000, data);
    for (int walk = 0; walk < 2; ++walk) {  // the second from the batched copy
        ASSERT_EQ(walker_.walk(state, view_, frames_), WalkStatus::kComplete);
        EXPECT_EQ(names(), (std::vector<std::string>{"query", "handle", "main"}));
        ASSERT_EQ(frames_.size(), 3u);
        EXPECT_EQ(frames_[0].address, data.frames[2]);
        EXPECT_EQ(frames_[2].address, data.frames[0]);
        EXPECT_EQ(frames_[0].byteOffset, testing::FakeProcess::kByteOffset);
        EXPECT_EQ(view_.frame, data.frames[2]);
    }
}

TEST_F(WalkerDataStackTest, RunningGeneratorIsWalkedThroughTheChain) {
    DataStack data = stack({"main", "handle"});
    // The generator's frame lives in the generator, which exc_info points into.
    uint64_t generator = fake_.allocate(256);
    uint64_t genFrame = generator + 64;
    fake_.interpreterFrame(genFrame, fake_.code("produce", "app.py", 20, 1, 1), data.frames[1],
                           testing::FakeProcess::kOwnedByGenerator);
    setCurrentFrame(genFrame);
    uint64_t state = fake_.dataStackThread(cStack_.cframe, data, generator + 32);
    ASSERT_EQ(walker_.walk(state, view_, frames_), WalkStatus::kComplete);
    EXPECT_EQ(names(), (std::vector<std::string>{"produce", "handle", "main"}));
    ASSERT_FALSE(frames_.empty());
    EXPECT_EQ(frames_[0].address, genFrame);
    EXPECT_EQ(view_.frame, genFrame);
}

TEST_F(WalkerDataStackTest, FramesNotEndingAtTheTopFallBackToTheChain) {
    // A top past the last frame, or inside it: the chain is followed instead
    // (torn here, where the _PyCFrame cannot be read; complete where it can).
    for (int64_t moved : {8, -8}) {
        DataStack data = stack({"main", "handle"});
        data.top += moved;
        EXPECT_EQ(walker_.walk(fake_.dataStackThread(0xdead0000, data), view_, frames_),
                  WalkStatus::kTorn)
            << moved;
        ASSERT_EQ(walker_.walk(fake_.dataStackThread(cStack_.cframe, data), view_, frames_),
                  WalkStatus::kComplete)
            << moved;
        EXPECT_EQ(names(), (std::vector<std::string>{"handle", "main"}));
    }
}

TEST_F(WalkerDataStackTest, FrameNotOwnedByTheThreadFallsBackToTheChain) {
    DataStack data = stack({"main", "handle", "query"});
    fake_.put(data.frames[1] + fake_.layout().frame.owner, testing::FakeProcess::kOwnedByGenerator);
    EXPECT_EQ(walker_.walk(fake_.dataStackThread(0xdead0000, data), view_, frames_),
              WalkStatus::kTorn);
    EXPECT_EQ(walker_.walk(fake_.dataStackThread(cStack_.cframe, data), view_, frames_),
              WalkStatus::kComplete);
}

TEST_F(WalkerDataStackTest, StaleCodeIsCheckedAgainAndTheDataStackWalkedAgain) {
    DataStack data = stack({"main", "handle", "query"});
    uint64_t state = fake_.dataStackThread(cStack_.cframe, data);
    uint64_t withoutCFrame = fake_.dataStackThread(0xdead0000, data);
    ASSERT_EQ(walker_.walk(withoutCFrame, view_, frames_), WalkStatus::kComplete);
    // Another code object at query's address, its frames 8 bytes smaller:
    // the cached size no longer fits until the code is checked again.
    uint64_t query = fake_.get<uint64_t>(data.frames[2] + fake_.layout().frame.code);
    int32_t stack = fake_.get<int32_t>(query + fake_.layout().code.stacksize);
    fake_.put(query + fake_.layout().code.stacksize, stack - 1);
    data.top -= 8;
    fake_.put(state + fake_.layout().thread.datastack_top, data.top);
    fake_.put(withoutCFrame + fake_.layout().thread.datastack_top, data.top);
    ASSERT_EQ(walker_.walk(state, view_, frames_), WalkStatus::kComplete);  // by the chain
    EXPECT_EQ(walker_.walk(withoutCFrame, view_, frames_), WalkStatus::kTorn);
    codes_.verifyPending();
    ASSERT_EQ(walker_.walk(withoutCFrame, view_, frames_), WalkStatus::kComplete);
    EXPECT_EQ(names(), (std::vector<std::string>{"query", "handle", "main"}));
}

TEST_F(WalkerDataStackTest, LaterChunkIsWalkedThroughTheChain) {
    DataStack root = stack({"main", "handle"});
    DataStack data = stack({"query", "fetch"}, &root);
    uint64_t state = fake_.dataStackThread(cStack_.cframe, data);
    ASSERT_EQ(walker_.walk(state, view_, frames_), WalkStatus::kComplete);
    EXPECT_EQ(names(), (std::vector<std::string>{"fetch", "query", "handle", "main"}));
    EXPECT_EQ(view_.frame, data.frames[1]);
}

}  // namespace
}  // namespace vigil
