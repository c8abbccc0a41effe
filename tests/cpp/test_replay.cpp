#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "temp_dir.h"

using vigil::testing::TempDir;

#include "core/errors.h"
#include "known_trace.h"
#include "trace/breakpoints.h"
#include "trace/process_dir.h"
#include "trace/replay_cursor.h"
#include "trace/replay_time.h"
#include "trace/replay_timeline.h"
#include "trace/trace_reader.h"
#include "trace/trace_writer.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using testing::kMainThread;
using testing::KnownTrace;
using testing::kWorkerThread;

// The known trace (known_trace.h), written whole, and a cursor over it.
class ReplayTest : public ::testing::Test {
  protected:
    void SetUp() override {
        {
            TraceWriter writer(dir_.path() + "/trace", "prog", ::getpid(),
                               testing::preciseOptions());
            KnownTrace trace(writer, dir_.path());
            trace.firstPart();
            trace.secondPart();
        }
        reader_ = std::make_unique<TraceReader>(dir_.path() + "/trace");
        ASSERT_FALSE(reader_->error());
        timeline_ = std::make_unique<ReplayTimeline>(*reader_);
        cursor_ = std::make_unique<ReplayCursor>(*timeline_);
    }

    // "101 line main:3 d1": thread, kind, function:line, depth.
    std::string where() {
        TraceEvent event = cursor_->event();
        const TraceCode* code = reader_->code(event.code);
        return fmt::format("{} {} {}:{} d{}", event.thread, traceEventKindName(event.kind),
                           code ? code->qualname : "-", event.line, event.depth);
    }
    // The frames at the cursor, innermost first: "fact:13 fact:12 ...".
    std::string stack() {
        std::string text;
        for (const TraceFrame& frame : cursor_->stack())
            text += fmt::format("{}{}:{}", text.empty() ? "" : " ",
                                reader_->code(frame.code)->qualname, frame.line);
        return text;
    }
    void repeat(int times, bool (ReplayCursor::*move)(Direction), Direction direction) {
        for (int i = 0; i < times; ++i) ASSERT_TRUE(((*cursor_).*move)(direction)) << where();
    }
    int64_t nowNs() { return cursor_->event().estimatedTimeNs; }

    TempDir dir_{"vigil-replay-test"};
    std::unique_ptr<TraceReader> reader_;
    std::unique_ptr<ReplayTimeline> timeline_;
    std::unique_ptr<ReplayCursor> cursor_;
    static constexpr Direction kForward = Direction::kForward;
    static constexpr Direction kBackward = Direction::kBackward;
};

TEST_F(ReplayTest, StartsAtTheFirstEventWithBothThreadsInSeveralBlocks) {
    EXPECT_EQ(where(), "101 call main:1 d1");
    ASSERT_EQ(timeline_->threads().size(), 2u);
    EXPECT_EQ(timeline_->thread(1).nativeId, kMainThread);
    EXPECT_EQ(timeline_->thread(2).nativeId, kWorkerThread);
    EXPECT_EQ(timeline_->thread(1).blocks.size(), 5u);
    EXPECT_EQ(timeline_->thread(1).blocks[1]->minDepth, 3u);  // fact(1) alone
}

TEST_F(ReplayTest, StepGoesIntoCallsAndBackInTheSameThread) {
    repeat(3, &ReplayCursor::step, kForward);
    EXPECT_EQ(where(), "101 call fact:10 d2");
    repeat(8, &ReplayCursor::step, kForward);  // across two blocks, the worker's events between
    EXPECT_EQ(where(), "101 line fact:13 d4");
    repeat(1, &ReplayCursor::step, kForward);
    EXPECT_EQ(where(), "101 return fact:13 d4");
    repeat(10, &ReplayCursor::step, kBackward);
    EXPECT_EQ(where(), "101 line main:3 d1");
    repeat(2, &ReplayCursor::step, kBackward);
    EXPECT_FALSE(cursor_->step(kBackward));
    EXPECT_EQ(where(), "101 call main:1 d1");
}

TEST_F(ReplayTest, NextStepsOverCallsAndOutOfReturns) {
    repeat(2, &ReplayCursor::next, kForward);
    EXPECT_EQ(where(), "101 line main:3 d1");
    // Over the whole recursion, a block of fact(1) skipped undecoded.
    repeat(1, &ReplayCursor::next, kForward);
    EXPECT_EQ(where(), "101 line main:4 d1");
    repeat(1, &ReplayCursor::next, kBackward);
    EXPECT_EQ(where(), "101 line main:3 d1");
    // Into fact(3): n from its call stops at its first line, then at its return.
    repeat(1, &ReplayCursor::step, kForward);
    repeat(3, &ReplayCursor::next, kForward);
    EXPECT_EQ(where(), "101 return fact:12 d2");
    // From a return, the caller's next event.
    repeat(1, &ReplayCursor::next, kForward);
    EXPECT_EQ(where(), "101 line main:4 d1");
    // Backward from a call: the line that made it.
    repeat(1, &ReplayCursor::next, kForward);
    repeat(1, &ReplayCursor::step, kForward);
    EXPECT_EQ(where(), "101 call fail:20 d2");
    repeat(1, &ReplayCursor::next, kBackward);
    EXPECT_EQ(where(), "101 line main:5 d1");
}

TEST_F(ReplayTest, StepsThroughAnExceptionAndOffTheEnd) {
    ASSERT_TRUE(cursor_->find("fail", kForward));
    std::vector<std::string> seen;
    while (cursor_->next(kForward)) seen.push_back(where());
    EXPECT_EQ(seen, (std::vector<std::string>{"101 line fail:21 d2", "101 exception fail:21 d2",
                                              "101 return fail:21 d2", "101 exception main:5 d1",
                                              "101 line main:6 d1", "101 line main:7 d1",
                                              "101 line main:8 d1", "101 return main:8 d1"}));
    EXPECT_FALSE(cursor_->step(kForward));
}

TEST_F(ReplayTest, UpAndDownTheStack) {
    ASSERT_TRUE(cursor_->find("fact", kForward));
    repeat(8, &ReplayCursor::step, kForward);
    EXPECT_EQ(where(), "101 line fact:13 d4");
    EXPECT_EQ(stack(), "fact:13 fact:12 fact:12 main:3");
    EXPECT_FALSE(cursor_->down());
    for (size_t frame = 1; frame <= 3; ++frame) {
        ASSERT_TRUE(cursor_->up());
        EXPECT_EQ(cursor_->frame(), frame);
    }
    EXPECT_FALSE(cursor_->up());
    ASSERT_TRUE(cursor_->down());
    EXPECT_EQ(cursor_->frame(), 2u);
    // A move shows the innermost frame again; a return still has its frame.
    repeat(1, &ReplayCursor::step, kForward);
    EXPECT_EQ(cursor_->frame(), 0u);
    EXPECT_EQ(stack(), "fact:13 fact:12 fact:12 main:3");
    repeat(1, &ReplayCursor::step, kForward);
    EXPECT_EQ(stack(), "fact:12 fact:12 main:3");
}

TEST_F(ReplayTest, ContinueStopsAtBreakpointsOfEveryThreadInTimeOrder) {
    Breakpoints breakpoints;
    breakpoints.add("prog.py:13", "");
    const Breakpoint& handle = breakpoints.add("9", dir_.path() + "/worker.py");
    EXPECT_EQ(handle.id, 2);
    std::vector<std::string> hits;
    while (const Breakpoint* hit = cursor_->resume(kForward, breakpoints))
        hits.push_back(fmt::format("{} at {}", hit->id, where()));
    EXPECT_EQ(hits,
              (std::vector<std::string>{"2 at 202 line handle:9 d2", "1 at 101 line fact:13 d4",
                                        "2 at 202 line handle:9 d2"}));
    EXPECT_EQ(where(), "101 return main:8 d1");  // none left: the last event
    hits.clear();
    while (const Breakpoint* hit = cursor_->resume(kBackward, breakpoints))
        hits.push_back(fmt::format("{} at {}", hit->id, where()));
    EXPECT_EQ(hits.size(), 3u);
    EXPECT_EQ(where(), "101 call main:1 d1");
    // A breakpoint on a function's first line stops at its calls.
    breakpoints.clear();
    breakpoints.add("prog.py:20", "");
    EXPECT_TRUE(cursor_->resume(kForward, breakpoints));
    EXPECT_EQ(where(), "101 call fail:20 d2");
}

TEST_F(ReplayTest, FindsCallsByQualifiedNameOrLastPart) {
    ASSERT_TRUE(cursor_->find("handle", kForward));
    EXPECT_EQ(where(), "202 call handle:8 d2");
    ASSERT_TRUE(cursor_->find("fact", kForward));
    EXPECT_EQ(where(), "101 call fact:10 d4");  // the next in time, not in the thread
    EXPECT_FALSE(cursor_->find("nothing", kForward));
    ASSERT_TRUE(cursor_->find("work", kBackward));
    EXPECT_EQ(where(), "202 call work:3 d1");
    EXPECT_FALSE(cursor_->find("ork", kForward));
    EXPECT_TRUE(functionMatches("Worker.run", "run"));
    EXPECT_TRUE(functionMatches("outer.<locals>.run", "<locals>.run"));
    EXPECT_FALSE(functionMatches("Worker.rerun", "run"));
}

TEST_F(ReplayTest, SwitchesThreadAtTheCurrentTime) {
    ASSERT_TRUE(cursor_->switchThread());
    EXPECT_EQ(where(), "202 call work:3 d1");  // the worker has nothing earlier
    ASSERT_TRUE(cursor_->switchThread());
    EXPECT_EQ(cursor_->event().thread, kMainThread);
    EXPECT_FALSE(cursor_->switchThread(kMainThread));  // there already
    ASSERT_TRUE(cursor_->switchThread(kWorkerThread));
    EXPECT_EQ(cursor_->event().thread, kWorkerThread);
    EXPECT_THROW(cursor_->switchThread(999), UsageError);
    // From the very end, the worker's last event: it has nothing later.
    cursor_->jump(INT64_MAX);
    EXPECT_EQ(where(), "101 return main:8 d1");
    ASSERT_TRUE(cursor_->switchThread());
    EXPECT_EQ(where(), "202 return work:6 d1");
}

TEST_F(ReplayTest, JumpsToTheThreadsFirstEventFromATime) {
    ASSERT_TRUE(cursor_->find("work", kForward));
    int64_t workerStart = nowNs();
    cursor_->jump(0);
    EXPECT_EQ(where(), "202 call work:3 d1");  // the thread stays when it can
    ASSERT_TRUE(cursor_->switchThread(kMainThread));
    cursor_->jump(workerStart);
    EXPECT_EQ(where(), "101 call fact:10 d2");
    int64_t factStart = nowNs();
    cursor_->jump(factStart);
    EXPECT_EQ(where(), "101 call fact:10 d2");
    cursor_->jump(factStart + 1);
    EXPECT_EQ(where(), "101 line fact:11 d2");
    ASSERT_TRUE(cursor_->step(kForward));
    cursor_->jump(factStart - 1);
    EXPECT_EQ(where(), "101 call fact:10 d2");
    // Past the thread's end: the first event of another thread from then on.
    ASSERT_TRUE(cursor_->switchThread(kWorkerThread));
    while (cursor_->step(kForward)) {
    }
    EXPECT_EQ(where(), "202 return work:6 d1");
    cursor_->jump(nowNs() + 1);
    EXPECT_EQ(where(), "101 line main:6 d1");
    // Past every thread's end: the last event.
    cursor_->jump(INT64_MAX);
    EXPECT_EQ(where(), "101 return main:8 d1");
}

// The timeline against a plain scan of every decoded event, at every place
// of a random trace cut in many blocks: step with and without a depth, the
// stack, and the merged walks both ways.
TEST(ReplayTimelineTest, AgreesWithAPlainScanOfARandomTrace) {
    TempDir dir{"vigil-replay-test"};
    {
        TraceWriter writer(dir.path() + "/trace", "random", ::getpid(), {});
        uint32_t codes[] = {writer.defineCode("/a.py", "f", 1), writer.defineCode("/b.py", "g", 5)};
        ThreadTrace* threads[] = {writer.thread(1), writer.thread(2)};
        uint64_t state = 12345;
        std::vector<size_t> depth(2, 0);
        for (int i = 0; i < 6000; ++i) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            size_t t = (state >> 20) % 2;
            uint64_t roll = (state >> 33) % 100;
            // A slow drift down then up makes blocks whose minimum depth
            // is deep, which `step` with a depth skips.
            bool down = (i / 700) % 2 == 0;
            if (roll < (down ? 30u : 12u)) {
                threads[t]->call(codes[roll % 2], 1 + roll), ++depth[t];
            } else if (roll < 42 && depth[t] > 0) {
                threads[t]->ret(), --depth[t];
            } else {
                threads[t]->line(static_cast<uint32_t>(1 + roll));
            }
            if (i % 150 == 0) writer.flush();
        }
    }
    TraceReader reader(dir.path() + "/trace");
    ASSERT_FALSE(reader.error());
    ReplayTimeline timeline(reader);
    for (const auto& [serial, thread] : timeline.threads()) {
        ASSERT_GT(thread.blocks.size(), 10u);
        std::vector<ReplayPlace> places;
        std::vector<TraceEvent> events;
        for (uint32_t b = 0; b < thread.blocks.size(); ++b) {
            std::vector<TraceEvent> decoded = reader.decode(*thread.blocks[b]);
            for (uint32_t e = 0; e < decoded.size(); ++e) places.push_back({serial, b, e});
            events.insert(events.end(), decoded.begin(), decoded.end());
        }
        std::vector<TraceFrame> stack{{}};
        for (size_t i = 0; i < places.size(); ++i) {
            for (Direction direction : {Direction::kForward, Direction::kBackward}) {
                for (uint32_t maxDepth : {UINT32_MAX, events[i].depth, events[i].depth / 2}) {
                    std::optional<ReplayPlace> expected;
                    auto check = [&](size_t j) {
                        if (events[j].depth <= maxDepth) expected = places[j];
                        return expected.has_value();
                    };
                    if (direction == Direction::kForward) {
                        for (size_t j = i + 1; j < places.size() && !check(j); ++j) {
                        }
                    } else {
                        for (size_t j = i; j-- > 0 && !check(j);) {
                        }
                    }
                    ASSERT_EQ(timeline.step(places[i], direction, maxDepth), expected)
                        << "event " << i << " depth " << maxDepth;
                }
            }
            const TraceEvent& event = events[i];
            if (event.kind == TraceEventKind::kCall) stack.push_back({event.code, event.line});
            if (event.kind != TraceEventKind::kCall && event.kind != TraceEventKind::kReturn)
                stack.back().line = event.line;
            std::vector<TraceFrame> expected(stack.rbegin(), stack.rend() - 1);
            ASSERT_EQ(timeline.stack(places[i]), expected) << "event " << i;
            if (event.kind == TraceEventKind::kReturn && stack.size() > 1) stack.pop_back();
        }
    }
    std::vector<ReplayPlace> forward, backward;
    MergedWalk ahead(timeline, std::nullopt, Direction::kForward);
    for (auto place = ahead.next(); place; place = ahead.next()) forward.push_back(*place);
    MergedWalk behind(timeline, std::nullopt, Direction::kBackward);
    for (auto place = behind.next(); place; place = behind.next()) backward.push_back(*place);
    ASSERT_EQ(forward.size(), 6000u);
    EXPECT_TRUE(std::equal(forward.begin(), forward.end(), backward.rbegin()));
    for (size_t i = 1; i < forward.size(); ++i)
        ASSERT_TRUE(timeline.before(forward[i - 1], forward[i])) << i;
    // From the middle, a walk goes on where the whole one was.
    MergedWalk middle(timeline, forward[3000], Direction::kForward);
    EXPECT_EQ(middle.next(), forward[3001]);
    MergedWalk back(timeline, forward[3000], Direction::kBackward);
    EXPECT_EQ(back.next(), forward[2999]);
}

// --- Times ---

class ReplayTimeTest : public ::testing::Test {
  protected:
    void SetUp() override { setZone("UTC0"); }
    void TearDown() override { setZone(nullptr); }
    static void setZone(const char* zone) {
        if (zone)
            ::setenv("TZ", zone, 1);
        else
            ::unsetenv("TZ");
        ::tzset();
    }
    int64_t parse(const char* text) { return parseJumpTime(text, clock_, currentNs_); }

    static constexpr int64_t kS = 1'000'000'000;
    // The trace started at 2025-03-14 12:00:00 UTC, CLOCK_MONOTONIC 5 s.
    static constexpr int64_t kStartWall = 1741953600 * kS;
    static constexpr int64_t kStartMono = 5 * kS;
    TraceMeta meta_{1, 1, 0, "p", kStartMono, kStartWall};
    TraceClock clock_{meta_};
    int64_t currentNs_ = kStartMono + 10 * kS;  // 12:00:10
};

TEST_F(ReplayTimeTest, ReadsTimesOfDayDatesAndDistances) {
    EXPECT_EQ(parse("12:00:16.55"), kStartMono + 16'550'000'000);
    EXPECT_EQ(parse("12:00:16.123456789"), kStartMono + 16'123'456'789);
    EXPECT_EQ(parse("11:59"), kStartMono - 60 * kS);
    EXPECT_EQ(parse("2025-03-14 12:00:16.55"), kStartMono + 16'550'000'000);
    EXPECT_EQ(parse("2025-03-14T12:01:00"), kStartMono + 60 * kS);
    EXPECT_EQ(parse("2025-03-13 12:00:00"), kStartMono - 86400 * kS);
    EXPECT_EQ(parse("+2s"), currentNs_ + 2 * kS);
    EXPECT_EQ(parse("-300ms"), currentNs_ - 300'000'000);
    EXPECT_EQ(parse("+1h"), currentNs_ + 3600 * kS);
    EXPECT_EQ(parse("+1.5min"), currentNs_ + 90 * kS);
    EXPECT_EQ(parse("+2m"), currentNs_ + 120 * kS);
    EXPECT_EQ(parse("-250us"), currentNs_ - 250'000);
    EXPECT_EQ(parse("+10ns"), currentNs_ + 10);
    EXPECT_EQ(parse("+.5s"), currentNs_ + kS / 2);
}

TEST_F(ReplayTimeTest, ATimeOfDayIsOnTheDayNearestTheCurrentEvent) {
    currentNs_ = kStartMono + (12 * 3600 - 10) * kS;                  // 23:59:50 on the 14th
    EXPECT_EQ(parse("00:00:05"), kStartMono + (12 * 3600 + 5) * kS);  // the 15th
    EXPECT_EQ(parse("23:59:00"), kStartMono + (12 * 3600 - 60) * kS);
    currentNs_ = kStartMono - 12 * 3600 * kS + 5 * kS;                   // 00:00:05 on the 14th
    EXPECT_EQ(parse("23:59:55"), kStartMono - 12 * 3600 * kS - 5 * kS);  // the 13th
}

TEST_F(ReplayTimeTest, RefusesAnythingElse) {
    for (const char* bad : {"", "12", "+2", "2s", "25:00", "12:60", "+2days", "12:00:16.", "now",
                            "2025-13-01 10:00", "+-2s", "12:00:16.1234567891"})
        EXPECT_THROW(parse(bad), UsageError) << bad;
}

TEST_F(ReplayTimeTest, PrintsLocalTimes) {
    int64_t wall = kStartWall + 16'550'000'123;
    EXPECT_EQ(isoLocalTime(wall), "2025-03-14T12:00:16.550000123+00:00");
    EXPECT_EQ(timeOfDay(wall), "12:00:16.550000");
    EXPECT_EQ(secondsText(1'234'567'890), "+1.234567s");
    EXPECT_EQ(secondsText(-300'000), "-0.000300s");
    setZone("XST-1:30");  // 1 h 30 east of UTC, no summer time
    EXPECT_EQ(isoLocalTime(wall), "2025-03-14T13:30:16.550000123+01:30");
    EXPECT_EQ(parse("13:30:16.55"), kStartMono + 16'550'000'000);
    setZone("YST5");
    EXPECT_EQ(isoLocalTime(wall), "2025-03-14T07:00:16.550000123-05:00");
}

// --- Breakpoints and directories ---

TEST(ReplayBreakpointsTest, ReadsLinesAndFiles) {
    Breakpoints breakpoints;
    const Breakpoint& first = breakpoints.add("42", "/srv/app/flow.py");
    EXPECT_EQ(first.file, "/srv/app/flow.py");
    EXPECT_EQ(first.line, 42u);
    const Breakpoint& second = breakpoints.add("C:/odd:path/x.py:7", "");
    EXPECT_EQ(second.file, "C:/odd:path/x.py");
    EXPECT_EQ(second.line, 7u);
    for (const char* bad : {"x", "flow.py:", "0", "flow.py:0", "flow.py:1x", ":5"})
        EXPECT_THROW(breakpoints.add(bad, "/srv/app/flow.py"), UsageError) << bad;
    EXPECT_THROW(breakpoints.add("5", ""), UsageError);  // no file shown
    EXPECT_TRUE(breakpoints.remove(1));
    EXPECT_FALSE(breakpoints.remove(1));
    ASSERT_EQ(breakpoints.list().size(), 1u);
    EXPECT_EQ(breakpoints.add("3", "/a.py").id, 3);  // ids are not reused
    EXPECT_TRUE(fileMatches("/srv/app/flow.py", "flow.py"));
    EXPECT_TRUE(fileMatches("/srv/app/flow.py", "app/flow.py"));
    EXPECT_TRUE(fileMatches("/srv/app/flow.py", "/srv/app/flow.py"));
    EXPECT_FALSE(fileMatches("/srv/app/myflow.py", "flow.py"));
    EXPECT_FALSE(fileMatches("flow.py", "/flow.py"));
}

TEST(ReplayDirTest, FindsTheProcessDirectoryOrSaysWhy) {
    TempDir base{"vigil-replay-test"};
    EXPECT_THROW(findProcessDir(base.path() + "/missing"), BadFileError);
    EXPECT_THROW(findProcessDir(base.path()), BadFileError);  // no trace in it
    auto first = TraceWriter::open(base.path(), "gunicorn", ::getpid());
    std::string process = first->dir();
    EXPECT_EQ(findProcessDir(process), process);
    EXPECT_EQ(findProcessDir(base.path()), base.path() + "/latest/gunicorn");
    EXPECT_EQ(findProcessDir(first->runDir()), process);
    auto child = TraceWriter::open("", "gunicorn", 4242, {}, first->runDir());
    try {
        findProcessDir(base.path());
        FAIL() << "two processes: no choice made";
    } catch (const UsageError& error) {
        EXPECT_NE(std::string(error.what()).find("2 processes (gunicorn, gunicorn-4242)"),
                  std::string::npos)
            << error.what();
    }
    EXPECT_THROW(findProcessDir(process + "/trace.json"), BadFileError);
}

}  // namespace
}  // namespace vigil
