// The stack walker on fake 3.10 frame chains: normal, cyclic (torn), garbage.
#include <gtest/gtest.h>

#include "core/code_cache.h"
#include "core/objects.h"
#include "core/stack_walker.h"
#include "fake_process.h"

namespace vigil {
namespace {

class WalkerTest : public ::testing::Test {
  protected:
    WalkerTest()
        : fake_(*generatedLayout(3, 10)),
          memory_(fake_.memory()),
          objects_(memory_, fake_.layout()),
          codes_(objects_, strings_),
          walker_(memory_, fake_.layout(), codes_) {}

    // A chain of frames, outermost first in names; returns the innermost.
    uint64_t chain(const std::vector<std::string>& names) {
        uint64_t frame = 0;
        for (const std::string& name : names)
            frame = fake_.frameObject(fake_.code(name, "app.py", 10), frame);
        return frame;
    }

    testing::FakeProcess fake_;
    BufferMemory memory_;
    StringTable strings_;
    ObjectReader objects_;
    CodeCache codes_;
    StackWalker walker_;
    std::vector<RawFrame> frames_;
    ThreadStateView view_;
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

}  // namespace
}  // namespace vigil
