#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "temp_dir.h"

using vigil::testing::TempDir;

#include "core/agent_state.h"
#include "trace/block_decoder.h"
#include "trace/block_encoder.h"
#include "trace/thread_trace.h"
#include "trace/trace_reader.h"
#include "trace/trace_writer.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using trace::RawKind;

int64_t monotonicNs() {
    return clockNs(CLOCK_MONOTONIC);
}

// Drives a ThreadTrace (or nothing, to know what a child process wrote)
// with a deterministic mix of events, and keeps the events the reader must
// give back.
class Script {
  public:
    Script(ThreadTrace* trace, int32_t thread, std::vector<uint32_t> codes, uint64_t seed)
        : trace_(trace), thread_(thread), codes_(std::move(codes)), state_(seed | 1) {}

    void call(uint32_t code, uint32_t line) {
        if (trace_) trace_->call(code, line);
        stack_.push_back({code, line});
        expect(TraceEventKind::kCall);
    }
    void line(uint32_t line) {
        if (trace_) trace_->line(line);
        stack_.back().line = line;
        expect(TraceEventKind::kLine);
    }
    void ret() {
        if (trace_) trace_->ret();
        expect(TraceEventKind::kReturn);
        if (stack_.size() > 1) stack_.pop_back();
    }
    void exception(uint32_t line) {
        if (trace_) trace_->exception(line);
        stack_.back().line = line;
        expect(TraceEventKind::kException);
    }
    void taskSwitch(uint64_t task) {
        if (trace_) trace_->taskSwitch(task);
        task_ = task;
        expect(TraceEventKind::kTaskSwitch);
    }

    // Recursion `depth` frames deep, a line in each.
    void dive(size_t depth) {
        for (size_t i = 0; i < depth; ++i) {
            call(pick(), 10);
            line(11);
        }
    }

    // Calls and returns about as often (the depth wanders), short and long
    // line jumps both ways, exceptions, task switches, returns at the root.
    void random(size_t count) {
        for (size_t i = 0; i < count; ++i) {
            uint64_t roll = next() % 1000;
            uint32_t top = stack_.back().line;
            if (roll < 90 && stack_.size() < 500) {
                call(pick(), static_cast<uint32_t>(1 + next() % 3000));
            } else if (roll < 180) {
                ret();
            } else if (roll < 185) {
                exception(top + static_cast<uint32_t>(next() % 3));
            } else if (roll < 188) {
                taskSwitch(next() % 4 == 0 ? next() | uint64_t{1} << 40 : next() % 8);
            } else if (roll < 200) {
                line(static_cast<uint32_t>((top + 1000 + next() % 100000) % 100'000'000));
            } else {
                int64_t delta = static_cast<int64_t>(next() % 21) - 8;
                line(static_cast<uint32_t>(std::max<int64_t>(1, top + delta)));
            }
        }
    }

    const std::vector<TraceEvent>& expected() const { return expected_; }
    ThreadTrace* trace() const { return trace_; }

  private:
    uint64_t next() {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 7;
        state_ ^= state_ << 17;
        return state_;
    }
    uint32_t pick() { return codes_[next() % codes_.size()]; }
    void expect(TraceEventKind kind) {
        expected_.push_back({thread_, task_, kind, stack_.back().code, stack_.back().line,
                             static_cast<uint32_t>(stack_.size() - 1), 0, false});
    }

    ThreadTrace* trace_;
    int32_t thread_;
    std::vector<uint32_t> codes_;
    uint64_t state_;
    std::vector<TraceFrame> stack_{{}};
    uint64_t task_ = 0;
    std::vector<TraceEvent> expected_;
};

std::vector<uint32_t> defineCodes(TraceWriter& writer, int count) {
    std::vector<uint32_t> codes;
    for (int i = 0; i < count; ++i)
        codes.push_back(writer.defineCode(fmt::format("/srv/app/module{}.py", i % 5),
                                          fmt::format("Class{}.method{}", i % 3, i), 10 + i));
    return codes;
}

// Everything but the times.
void expectSameEvents(const std::vector<TraceEvent>& actual,
                      const std::vector<TraceEvent>& expected, size_t expectedFrom = 0) {
    ASSERT_LE(expectedFrom + actual.size(), expected.size());
    for (size_t i = 0; i < actual.size(); ++i) {
        const TraceEvent& a = actual[i];
        const TraceEvent& e = expected[expectedFrom + i];
        if (a.thread != e.thread || a.task != e.task || a.kind != e.kind || a.code != e.code ||
            a.line != e.line || a.depth != e.depth) {
            FAIL() << fmt::format(
                "event {}: got thread {} task {} {} code {} line {} depth {}, expected thread {} "
                "task {} {} code {} line {} depth {}",
                expectedFrom + i, a.thread, a.task, traceEventKindName(a.kind), a.code, a.line,
                a.depth, e.thread, e.task, traceEventKindName(e.kind), e.code, e.line, e.depth);
        }
    }
}

// The stack before expected[index], rebuilt from the events.
std::vector<TraceFrame> stackBefore(const std::vector<TraceEvent>& events, size_t index) {
    std::vector<TraceFrame> stack{{}};
    for (size_t i = 0; i < index; ++i) {
        const TraceEvent& event = events[i];
        if (event.kind == TraceEventKind::kCall) {
            stack.push_back({event.code, event.line});
        } else if (event.kind == TraceEventKind::kReturn) {
            if (stack.size() > 1) stack.pop_back();
        } else {
            stack.back().line = event.line;
        }
    }
    return stack;
}

// A thread's blocks in the order they were written.
std::vector<const TraceBlock*> blocksOf(const TraceReader& reader, int32_t thread) {
    std::vector<const TraceBlock*> blocks;
    for (const TraceBlock& block : reader.blocks())
        if (block.thread == thread) blocks.push_back(&block);
    std::sort(blocks.begin(), blocks.end(),
              [](const TraceBlock* a, const TraceBlock* b) { return a->number < b->number; });
    return blocks;
}

std::vector<TraceEvent> eventsOf(const TraceReader& reader, int32_t thread) {
    std::vector<TraceEvent> events;
    for (const TraceBlock* block : blocksOf(reader, thread)) {
        std::vector<TraceEvent> decoded = reader.decode(*block);
        events.insert(events.end(), decoded.begin(), decoded.end());
    }
    return events;
}

int64_t directoryBytes(const std::string& dir) {
    int64_t total = 0;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_regular_file()) total += static_cast<int64_t>(entry.file_size());
    return total;
}

void flipByte(const std::string& path, uint64_t offset) {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(offset));
    char byte = 0;
    file.get(byte);
    file.seekp(static_cast<std::streamoff>(offset));
    file.put(static_cast<char>(byte ^ 0x5a));
}

// --- The codec ---

void addTime(std::vector<uint32_t>& words, RawKind kind, int64_t ns) {
    words.push_back(static_cast<uint32_t>(static_cast<uint64_t>(ns) >> 32) << trace::kRawKindBits |
                    kind);
    words.push_back(static_cast<uint32_t>(ns));
}

std::vector<TraceEvent> roundTrip(const std::vector<uint32_t>& words,
                                  const std::vector<int64_t>& leadingMarks = {}) {
    trace::ThreadReplay replay;
    trace::BlockEncoder encoder(3);
    encoder.start(replay);
    for (int64_t ns : leadingMarks) encoder.mark(ns);
    encoder.add(words, replay);
    std::string block;
    encoder.finish(7, 1, 42, block);
    trace::BlockHeader header = trace::parseBlockHeader(block);
    return trace::decodeBlock(
        header, std::string_view(block).substr(trace::blockHeaderSize(header.stack.size())));
}

TEST(TraceCodecTest, InterpolatesLinearlyBetweenTimePoints) {
    std::vector<uint32_t> words;
    addTime(words, trace::kRawStamp, 1000);
    for (uint32_t line = 1; line <= 4; ++line)
        words.push_back(trace::rawWord(trace::kRawLine, line));
    addTime(words, trace::kRawMark, 1400);
    addTime(words, trace::kRawStamp, 5000);
    words.push_back(trace::rawWord(trace::kRawLine, 5));
    std::vector<TraceEvent> events = roundTrip(words);
    ASSERT_EQ(events.size(), 5u);
    // Ranks 0..3 at positions 0, 2, 4, 6; the mark at 7; the last stamp at 8.
    EXPECT_EQ(events[0].estimatedTimeNs, 1000);
    EXPECT_TRUE(events[0].precise);
    EXPECT_EQ(events[1].estimatedTimeNs, 1000 + 400 * 2 / 7);
    EXPECT_EQ(events[2].estimatedTimeNs, 1000 + 400 * 4 / 7);
    EXPECT_EQ(events[3].estimatedTimeNs, 1000 + 400 * 6 / 7);
    EXPECT_FALSE(events[3].precise);
    EXPECT_EQ(events[4].estimatedTimeNs, 5000);
    EXPECT_TRUE(events[4].precise);
}

TEST(TraceCodecTest, KeepsOnlyTheTightestTimePointsAtTheEdges) {
    // Marks before the first event: only the last counts; after the last
    // event: only the first.
    std::vector<uint32_t> words;
    words.push_back(trace::rawWord(trace::kRawLine, 1));
    addTime(words, trace::kRawStamp, 1300);
    words.push_back(trace::rawWord(trace::kRawLine, 2));
    addTime(words, trace::kRawMark, 2000);
    addTime(words, trace::kRawMark, 3000);
    std::vector<TraceEvent> events = roundTrip(words, {500, 900});
    ASSERT_EQ(events.size(), 2u);
    // The mark at 900 sits at position -1, the stamp at 2.
    EXPECT_EQ(events[0].estimatedTimeNs, 900 + 400 / 3);
    EXPECT_EQ(events[1].estimatedTimeNs, 1300);
    trace::ThreadReplay replay;
    trace::BlockEncoder encoder(3);
    encoder.start(replay);
    encoder.mark(500);
    encoder.mark(900);
    encoder.add(words, replay);
    std::string block;
    encoder.finish(0, 1, 1, block);
    EXPECT_EQ(encoder.header().firstNs, 900);
    EXPECT_EQ(encoder.header().lastNs, 2000);
}

// --- Writer and reader ---

TEST(TraceFormatTest, RoundTripOfFourThreadsWithTasksAndDeepStacks) {
    TempDir dir{"vigil-trace-test"};
    std::vector<Script> scripts;
    {
        TraceWriter writer(dir.sub("trace"), "test", ::getpid(), {});
        std::vector<uint32_t> codes = defineCodes(writer, 40);
        for (int i = 0; i < 4; ++i) scripts.emplace_back(nullptr, 1000 + i, codes, 17 + i);
        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i) {
            threads.emplace_back([&, i] {
                Script& script = scripts[i];
                script = Script(writer.thread(1000 + i), 1000 + i, codes, 17 + i);
                script.random(2000);
                script.dive(300);
                script.random(60000);
                writer.thread(1000 + i)->end();  // one that never appended
                script.trace()->end();
            });
        }
        for (std::thread& thread : threads) thread.join();
        writer.flush();
        TraceStats stats = writer.stats();
        EXPECT_FALSE(stats.stopped);
        size_t total = 0;
        for (const Script& script : scripts) total += script.expected().size();
        EXPECT_EQ(stats.events, total);
    }
    TraceReader reader(dir.sub("trace"));
    ASSERT_FALSE(reader.error()) << reader.error()->what();
    EXPECT_EQ(reader.meta().processName, "test");
    EXPECT_EQ(reader.meta().pid, ::getpid());
    bool deepStart = false;
    for (const Script& script : scripts) {
        const std::vector<TraceEvent>& expected = script.expected();
        int32_t thread = expected.front().thread;
        std::vector<TraceEvent> decoded = eventsOf(reader, thread);
        ASSERT_EQ(decoded.size(), expected.size()) << "thread " << thread;
        expectSameEvents(decoded, expected);
        // Each block decodes alone: the stack in its header is the one the
        // thread had there, and its minimum depth is right.
        size_t index = 0;
        std::vector<const TraceBlock*> blocks = blocksOf(reader, thread);
        EXPECT_GT(blocks.size(), 3u);
        for (const TraceBlock* block : blocks) {
            EXPECT_EQ(block->stack, stackBefore(expected, index)) << "block " << block->number;
            EXPECT_EQ(block->task, index ? expected[index - 1].task : 0);
            std::vector<TraceEvent> alone = reader.decode(*block);
            uint32_t minDepth = block->startDepth();
            for (const TraceEvent& event : alone) {
                uint32_t after = event.kind == TraceEventKind::kReturn && event.depth > 0
                                     ? event.depth - 1
                                     : event.depth;
                minDepth = std::min(minDepth, after);
            }
            EXPECT_EQ(block->minDepth, minDepth);
            if (block->startDepth() >= 100) deepStart = true;
            index += alone.size();
        }
    }
    EXPECT_TRUE(deepStart) << "no block started deep in a stack";
    // All threads merged: by time, each thread's order kept.
    std::vector<TraceEvent> merged = reader.events();
    EXPECT_TRUE(std::is_sorted(merged.begin(), merged.end(), [](const auto& a, const auto& b) {
        return a.estimatedTimeNs < b.estimatedTimeNs;
    }));
    for (const Script& script : scripts) {
        std::vector<TraceEvent> ofThread;
        for (const TraceEvent& event : merged)
            if (event.thread == script.expected().front().thread) ofThread.push_back(event);
        ASSERT_EQ(ofThread.size(), script.expected().size());
        expectSameEvents(ofThread, script.expected());
    }
    const std::vector<TraceEvent>& first = scripts[0].expected();
    auto call = std::find_if(first.begin(), first.end(),
                             [](const TraceEvent& event) { return event.code != 0; });
    ASSERT_NE(call, first.end());
    const TraceCode* code = reader.code(call->code);
    ASSERT_NE(code, nullptr);
    EXPECT_TRUE(code->file.starts_with("/srv/app/module"));
    EXPECT_EQ(reader.code(0), nullptr);
    EXPECT_EQ(reader.code(41), nullptr);
}

void expectPrecise(const std::vector<TraceEvent>& events,
                   const std::vector<std::pair<int64_t, int64_t>>& brackets, size_t from,
                   size_t to) {
    for (size_t i = from; i < to; ++i) {
        EXPECT_TRUE(events[i].precise) << i;
        EXPECT_GE(events[i].estimatedTimeNs, brackets[i].first) << i;
        EXPECT_LE(events[i].estimatedTimeNs, brackets[i].second) << i;
    }
}

TEST(TraceFormatTest, PreciseModeTimesEveryEvent) {
    TempDir dir{"vigil-trace-test"};
    std::vector<std::pair<int64_t, int64_t>> brackets;
    auto timedLines = [&](ThreadTrace* thread, uint32_t from, uint32_t to) {
        for (uint32_t line = from; line < to; ++line) {
            int64_t before = monotonicNs();
            thread->line(line);
            brackets.push_back({before, monotonicNs()});
        }
    };
    {
        TraceOptions options;
        options.precise = true;
        TraceWriter writer(dir.sub("trace"), "test", ::getpid(), options);
        ThreadTrace* thread = writer.thread(7);
        thread->call(writer.defineCode("/a.py", "f", 1), 1);
        brackets.push_back({0, 0});
        timedLines(thread, 2, 500);
        thread->precise(false);
        timedLines(thread, 500, 1000);
        thread->precise(true);
        timedLines(thread, 1000, 1500);
    }
    TraceReader reader(dir.sub("trace"));
    std::vector<TraceEvent> events = reader.events();
    ASSERT_EQ(events.size(), brackets.size());
    expectPrecise(events, brackets, 1, 499);
    size_t stamped = std::count_if(events.begin() + 500, events.begin() + 999,
                                   [](const TraceEvent& event) { return event.precise; });
    EXPECT_LT(stamped, 50u);  // one in some 64
    expectPrecise(events, brackets, 999, events.size());
}

TEST(TraceFormatTest, AQuietSpellIsNotSpreadOverTheEventsAroundIt) {
    TempDir dir{"vigil-trace-test"};
    int64_t start, quietFrom, quietTo;
    {
        TraceWriter writer(dir.sub("trace"), "test", ::getpid(), {});
        ThreadTrace* thread = writer.thread(7);
        uint32_t code = writer.defineCode("/a.py", "f", 1);
        start = monotonicNs();
        thread->call(code, 1);
        for (uint32_t line = 2; line < 22; ++line) thread->line(line);
        quietFrom = monotonicNs();
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
        quietTo = monotonicNs();
        for (uint32_t line = 22; line < 42; ++line) thread->line(line);
    }
    TraceReader reader(dir.sub("trace"));
    std::vector<TraceEvent> events = reader.events();
    ASSERT_EQ(events.size(), 41u);
    // Before the spell: within a pass or two of the writer's thread (10 ms
    // each) of when they happened, not spread over the 150 ms.
    for (size_t i = 1; i <= 20; ++i) {
        EXPECT_GE(events[i].estimatedTimeNs, start);
        EXPECT_LE(events[i].estimatedTimeNs, quietFrom + 30'000'000) << i;
    }
    // The first one after it carries its own time.
    EXPECT_TRUE(events[21].precise);
    EXPECT_GE(events[21].estimatedTimeNs, quietTo);
    for (size_t i = 21; i < events.size(); ++i) EXPECT_GE(events[i].estimatedTimeNs, quietTo);
}

// Batches of events, each flushed (one block each). A batch's events are
// estimated within its times: from before its first append (its first
// event has a stamp: the flush before asked for one) to after its flush
// (which ended its block with a mark).
struct Batches {
    std::vector<TraceEvent> expected;
    std::vector<std::pair<int64_t, int64_t>> times;
    std::vector<size_t> firsts;  // index of each batch's first event
};

Batches writeBatches(TraceWriter& writer, int batches, int eventsPerBatch) {
    Batches result;
    Script script(writer.thread(7), 7, defineCodes(writer, 8), 99);
    for (int batch = 0; batch < batches; ++batch) {
        result.firsts.push_back(script.expected().size());
        int64_t from = monotonicNs();
        script.random(static_cast<size_t>(eventsPerBatch));
        writer.flush();
        result.times.push_back({from, monotonicNs()});
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
    result.expected = script.expected();
    return result;
}

TEST(TraceFormatTest, SeeksByTimeWithTheIndex) {
    TempDir dir{"vigil-trace-test"};
    Batches batches;
    {
        TraceWriter writer(dir.sub("trace"), "test", ::getpid(), {});
        batches = writeBatches(writer, 10, 1000);
    }
    TraceReader reader(dir.sub("trace"));
    ASSERT_FALSE(reader.error());
    ASSERT_EQ(reader.blocks().size(), 10u);
    // The index holds one entry per block, pointing at it.
    std::ifstream index(dir.sub("trace") + "/" + trace::indexFileName(1), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(index)), std::istreambuf_iterator<char>());
    ASSERT_EQ(bytes.size(), trace::kFileHeaderSize + 10 * trace::kIndexEntrySize);
    for (size_t i = 0; i < 10; ++i) {
        trace::IndexEntry entry = trace::parseIndexEntry(
            std::string_view(bytes).substr(trace::kFileHeaderSize + i * trace::kIndexEntrySize));
        const TraceBlock& block = reader.blocks()[i];
        EXPECT_EQ(entry.number, block.number);
        EXPECT_EQ(entry.offset, block.offset);
        EXPECT_EQ(entry.firstNs, block.firstNs);
        EXPECT_EQ(entry.minDepth, block.minDepth);
    }
    for (size_t batch : {0u, 5u, 9u}) {
        auto [from, to] = batches.times[batch];
        std::vector<const TraceBlock*> found = reader.overlapping(from, to);
        ASSERT_EQ(found.size(), 1u) << "batch " << batch;
        EXPECT_EQ(found[0]->number, batch);
        std::vector<TraceEvent> events = reader.events(from, to);
        ASSERT_EQ(events.size(), 1000u);
        expectSameEvents(events, batches.expected, batches.firsts[batch]);
    }
    EXPECT_TRUE(reader.overlapping(0, batches.times[0].first - 1).empty());
    EXPECT_EQ(reader.overlapping(batches.times[2].first, batches.times[4].second).size(), 3u);
}

TEST(TraceFormatTest, ACorruptBlockIsNamedAndTheBlocksBeforeItStillRead) {
    TempDir dir{"vigil-trace-test"};
    Batches batches;
    {
        TraceWriter writer(dir.sub("trace"), "test", ::getpid(), {});
        batches = writeBatches(writer, 6, 500);
    }
    std::string segment = dir.sub("trace") + "/" + trace::segmentFileName(1);
    std::vector<TraceBlock> intact;
    {
        TraceReader reader(dir.sub("trace"));
        intact = reader.blocks();
    }
    ASSERT_EQ(intact.size(), 6u);
    const TraceBlock& third = intact[3];
    for (uint64_t offset : {third.offset + third.size - 3, third.offset}) {  // payload, magic
        flipByte(segment, offset);
        TraceReader reader(dir.sub("trace"));
        ASSERT_TRUE(reader.error());
        std::string message = reader.error()->what();
        EXPECT_NE(message.find("events-000001.vtr: block 3 at offset"), std::string::npos)
            << message;
        EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
        EXPECT_EQ(reader.error()->code(), ExitCode::kBadFile);
        ASSERT_EQ(reader.blocks().size(), 3u);
        std::vector<TraceEvent> events = eventsOf(reader, 7);
        ASSERT_EQ(events.size(), 1500u);
        expectSameEvents(events, batches.expected);
        flipByte(segment, offset);  // back as it was
    }
    // A bad index entry is no error: the index only helps find the blocks.
    flipByte(dir.sub("trace") + "/" + trace::indexFileName(1), trace::kFileHeaderSize + 2);
    TraceReader reader(dir.sub("trace"));
    EXPECT_FALSE(reader.error());
    EXPECT_EQ(reader.blocks().size(), 6u);
}

struct ForkedChild {
    pid_t pid;
    int fromChild;  // the read end of a pipe whose write end the child got
};

// Runs body(dir, writeFd) in a child process; pid -1 when fork failed.
ForkedChild forkWithPipe(void (*body)(const std::string&, int), const std::string& dir) {
    int pipeFds[2];
    if (::pipe(pipeFds) != 0) return {-1, -1};
    pid_t child = ::fork();
    if (child == 0) {
        ::close(pipeFds[0]);
        body(dir, pipeFds[1]);
        ::_exit(0);
    }
    ::close(pipeFds[1]);
    return {child, pipeFds[0]};
}

// A child records, flushes, says so on `ready`, then keeps recording
// until it is killed.
[[noreturn]] void recordUntilKilled(const std::string& dir, int ready) {
    TraceWriter writer(dir, "child", ::getpid(), {});
    Script script(writer.thread(9), 9, defineCodes(writer, 8), 5);
    script.random(20000);
    writer.flush();
    if (::write(ready, "1", 1) != 1) ::_exit(2);
    while (true) {
        script.random(1000);
        ::usleep(200);
    }
}

TEST(TraceFormatTest, AKilledWritersFlushedEventsAllRead) {
    TempDir dir{"vigil-trace-test"};
    auto [child, fromChild] = forkWithPipe(recordUntilKilled, dir.sub("trace"));
    ASSERT_GE(child, 0);
    char byte = 0;
    ASSERT_EQ(::read(fromChild, &byte, 1), 1);
    ::close(fromChild);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    Script expected(nullptr, 9, {1, 2, 3, 4, 5, 6, 7, 8}, 5);
    expected.random(20000);

    std::vector<TraceBlock> blocks;
    {
        TraceReader reader(dir.sub("trace"));
        EXPECT_FALSE(reader.live());
        std::vector<TraceEvent> events = eventsOf(reader, 9);
        ASSERT_GE(events.size(), 20000u);
        events.resize(20000);
        expectSameEvents(events, expected.expected());
        blocks = reader.blocks();
    }
    // As if the kill had come in the middle of writing the last block.
    auto last = std::max_element(blocks.begin(), blocks.end(),
                                 [](const auto& a, const auto& b) { return a.number < b.number; });
    ASSERT_GT(last->number, 0u);
    fs::resize_file(dir.sub("trace") + "/" + trace::segmentFileName(last->segment),
                    last->offset + last->size / 2);
    TraceReader reader(dir.sub("trace"));
    ASSERT_TRUE(reader.error());
    std::string message = reader.error()->what();
    EXPECT_NE(message.find(fmt::format("{}: block {} at offset {} is truncated",
                                       trace::segmentFileName(last->segment), last->number,
                                       last->offset)),
              std::string::npos)
        << message;
    EXPECT_EQ(reader.blocks().size(), blocks.size() - 1);
    std::vector<TraceEvent> events = eventsOf(reader, 9);
    ASSERT_GE(events.size(), 20000u);
    events.resize(20000);
    expectSameEvents(events, expected.expected());
}

TEST(TraceFormatTest, UnflushedEventsReachTheDiskWithin100Milliseconds) {
    TempDir dir{"vigil-trace-test"};
    TraceWriter writer(dir.sub("trace"), "test", ::getpid(), {});
    ThreadTrace* thread = writer.thread(7);
    thread->call(writer.defineCode("/a.py", "f", 1), 1);
    writer.flush();
    TraceReader reader(dir.sub("trace"));
    EXPECT_TRUE(reader.live());
    size_t seen = 1;
    for (int burst = 0; burst < 3; ++burst) {
        for (uint32_t line = 2; line < 12; ++line) thread->line(line);
        seen += 10;
        auto appended = std::chrono::steady_clock::now();
        auto deadline = appended + std::chrono::milliseconds(100);
        size_t events = 0;
        while (std::chrono::steady_clock::now() < deadline) {
            reader.reload();
            events = 0;
            for (const TraceBlock& block : reader.blocks()) events += block.events;
            if (events == seen) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        ASSERT_EQ(events, seen) << "burst " << burst << ": not on disk after 100 ms";
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
}

TEST(TraceFormatTest, ReadsTheTraceOfARunningProcess) {
    TempDir dir{"vigil-trace-test"};
    TraceWriter writer(dir.sub("trace"), "test", ::getpid(), {});
    Script script(writer.thread(7), 7, defineCodes(writer, 8), 3);
    script.random(30000);
    writer.flush();
    TraceReader reader(dir.sub("trace"));
    EXPECT_TRUE(reader.live());
    EXPECT_FALSE(reader.error());
    expectSameEvents(eventsOf(reader, 7), script.expected());
    EXPECT_FALSE(reader.reload());
    script.random(50000);
    writer.flush();
    EXPECT_TRUE(reader.reload());
    std::vector<TraceEvent> events = eventsOf(reader, 7);
    ASSERT_EQ(events.size(), script.expected().size());
    expectSameEvents(events, script.expected());
}

TEST(TraceFormatTest, TheSizeLimitDropsTheOldestSegments) {
    TempDir dir{"vigil-trace-test"};
    TraceOptions options;
    options.limits.maxBytes = 512 << 10;  // segments of 128 KiB
    Script script(nullptr, 0, {}, 0);
    TraceStats stats;
    {
        TraceWriter writer(dir.sub("trace"), "test", ::getpid(), options);
        script = Script(writer.thread(7), 7, defineCodes(writer, 30), 11);
        for (int round = 0; round < 40; ++round) {
            script.random(25000);
            writer.flush();
            EXPECT_LE(directoryBytes(dir.sub("trace")), options.limits.maxBytes);
        }
        stats = writer.stats();
    }
    EXPECT_FALSE(stats.stopped);
    EXPECT_GT(stats.segmentsDropped, 0u);
    EXPECT_FALSE(fs::exists(dir.sub("trace") + "/" + trace::segmentFileName(1)));
    EXPECT_FALSE(fs::exists(dir.sub("trace") + "/" + trace::indexFileName(1)));
    EXPECT_LE(directoryBytes(dir.sub("trace")), options.limits.maxBytes);
    EXPECT_EQ(stats.bytesOnDisk, directoryBytes(dir.sub("trace")));
    TraceReader reader(dir.sub("trace"));
    ASSERT_FALSE(reader.error()) << reader.error()->what();
    std::vector<const TraceBlock*> blocks = blocksOf(reader, 7);
    ASSERT_FALSE(blocks.empty());
    EXPECT_GT(blocks.front()->number, 0u);
    // What is left is the end of the recording, and decodes from the stack
    // its first block starts in.
    std::vector<TraceEvent> events = eventsOf(reader, 7);
    const std::vector<TraceEvent>& expected = script.expected();
    ASSERT_LT(events.size(), expected.size());
    size_t first = expected.size() - events.size();
    EXPECT_EQ(blocks.front()->stack, stackBefore(expected, first));
    expectSameEvents(events, expected, first);
}

// A child whose files may not grow past 256 KiB records well past that:
// the recording must stop with one report line, and the child go on.
[[noreturn]] void recordPastTheFileSizeLimit(const std::string& dir, int reportFd) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{256 << 10, 256 << 10};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    TraceOptions options;
    options.report = [reportFd](const std::string& line) {
        std::string text = line + "\n";
        if (::write(reportFd, text.data(), text.size()) < 0) ::_exit(3);
    };
    TraceWriter writer(dir, "child", ::getpid(), options);
    Script script(writer.thread(9), 9, defineCodes(writer, 8), 21);
    for (int round = 0; round < 40; ++round) {
        script.random(50000);
        writer.flush();
    }
    ::_exit(writer.stats().stopped ? 0 : 1);
}

TEST(TraceFormatTest, AWriteErrorStopsTheRecordingWithOneReport) {
    TempDir dir{"vigil-trace-test"};
    auto [child, fromChild] = forkWithPipe(recordPastTheFileSizeLimit, dir.sub("trace"));
    ASSERT_GE(child, 0);
    std::string reports;
    char buffer[512];
    for (ssize_t got; (got = ::read(fromChild, buffer, sizeof(buffer))) > 0;)
        reports.append(buffer, static_cast<size_t>(got));
    ::close(fromChild);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the recording did not stop";
    EXPECT_EQ(std::count(reports.begin(), reports.end(), '\n'), 1) << reports;
    EXPECT_TRUE(reports.starts_with("trace recording stopped: cannot write ")) << reports;
    EXPECT_NE(reports.find("File too large"), std::string::npos) << reports;
    // The block that did not fit was taken back: the trace ends cleanly.
    TraceReader reader(dir.sub("trace"));
    EXPECT_FALSE(reader.error()) << reader.error()->what();
    Script expected(nullptr, 9, {1, 2, 3, 4, 5, 6, 7, 8}, 21);
    expected.random(50000 * 40);
    std::vector<TraceEvent> events = eventsOf(reader, 9);
    EXPECT_GT(events.size(), 10000u);
    expectSameEvents(events, expected.expected());
}

TEST(TraceFormatTest, ExhaustedBuffersStopTheRecording) {
    TempDir dir{"vigil-trace-test"};
    std::vector<std::string> reports;
    TraceOptions options;
    options.limits.maxBufferedBytes = 2 * sizeof(trace::Chunk);
    options.report = [&](const std::string& line) { reports.push_back(line); };
    TraceWriter writer(dir.sub("trace"), "test", ::getpid(), options);
    ThreadTrace* thread = writer.thread(7);
    thread->call(writer.defineCode("/a.py", "f", 1), 1);
    // Far more than two chunks before the writer's thread wakes up.
    for (int i = 0; i < 1'000'000; ++i) thread->line(static_cast<uint32_t>(2 + i % 50));
    writer.flush();
    EXPECT_TRUE(writer.stats().stopped);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].find("events came faster than they could be written"), std::string::npos)
        << reports[0];
    uint64_t written = writer.stats().events;
    thread->line(3);
    writer.flush();
    EXPECT_EQ(writer.stats().events, written);
    EXPECT_EQ(reports.size(), 1u);
}

TEST(TraceFormatTest, LaysOutRunsProcessesAndForkedChildren) {
    TempDir dir{"vigil-trace-test"};
    std::string base = dir.path() + "/traces";
    auto parent = TraceWriter::open(base, "web/app", 100, {});
    std::string run = parent->runDir();
    EXPECT_EQ(parent->dir(), run + "/web_app");
    EXPECT_EQ(fs::path(run).parent_path(), base);
    EXPECT_EQ(fs::path(run).filename().string().size(), 13u);  // YYMMDD-HHMMSS
    EXPECT_EQ(fs::read_symlink(base + "/latest"), fs::path(run).filename());
    auto child = TraceWriter::open(base, "web/app", 4242, {}, run);
    EXPECT_EQ(child->dir(), run + "/web_app-4242");
    EXPECT_EQ(child->runDir(), run);
    // Another run in the same second gets a directory of its own.
    auto next = TraceWriter::open(base, "web/app", 101, {});
    EXPECT_NE(next->runDir(), run);
    EXPECT_EQ(fs::read_symlink(base + "/latest"), fs::path(next->runDir()).filename());
    ThreadTrace* thread = next->thread(1);
    thread->call(next->defineCode("/a.py", "f", 1), 1);
    next->flush();
    TraceReader reader(base + "/latest/web_app");
    EXPECT_EQ(reader.events().size(), 1u);
    EXPECT_EQ(reader.meta().processName, "web/app");
    EXPECT_THROW((TraceWriter(parent->dir(), "again", 1, {})), OutputError);
    EXPECT_THROW((TraceReader(dir.path())), BadFileError);
}

TEST(TraceFormatTest, KeepsEveryVersionOfASourceOnce) {
    TempDir dir{"vigil-trace-test"};
    std::string file = dir.path() + "/app.py";
    std::ofstream(file) << "def f():\n    return 1\n";
    int64_t between;
    {
        TraceWriter writer(dir.sub("trace"), "test", ::getpid(), {});
        EXPECT_EQ(writer.defineCode(file, "f", 1), 1u);
        EXPECT_EQ(writer.defineCode(file, "g", 5), 2u);
        EXPECT_EQ(writer.defineCode(file, "f", 1), 1u);
        writer.keepSource(file);
        writer.keepSource("<string>");
        writer.flush();
        writer.keepSource(file);  // unchanged: not kept again
        writer.flush();
        between = monotonicNs();
        std::ofstream(file) << "def f():\n    return 2  # changed\n";
        writer.keepSource(file);
        writer.flush();
    }
    TraceReader reader(dir.sub("trace"));
    EXPECT_FALSE(reader.error());
    ASSERT_NE(reader.code(2), nullptr);
    EXPECT_EQ(reader.code(2)->qualname, "g");
    EXPECT_EQ(reader.code(2)->firstLine, 5u);
    EXPECT_EQ(reader.code(3), nullptr);
    EXPECT_EQ(reader.source(file), "def f():\n    return 2  # changed\n");
    EXPECT_EQ(reader.source(file, between), "def f():\n    return 1\n");
    EXPECT_EQ(reader.source("<string>"), std::nullopt);
    std::ifstream sources(dir.sub("trace") + "/" + trace::kSourcesFile, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(sources)), std::istreambuf_iterator<char>());
    size_t versions = 0;
    for (size_t at = bytes.find("def f"); at != std::string::npos; at = bytes.find("def f", at + 1))
        ++versions;
    EXPECT_EQ(versions, 2u);
}

}  // namespace
}  // namespace vigil
