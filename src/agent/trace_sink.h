// Where the execution recorder (tracer.cpp) puts what it records: code
// definitions, and per thread a stream of events in batches. The recorder
// knows nothing of files or formats; the on-disk writer implements these two
// interfaces, and so do the in-memory sinks below (tests, benchmarks).
//
// A thread's stream replays its execution: kCall enters a code object (by
// the id defineCode gave it) at a line, kLine and kException happen in the
// innermost entered code, kReturn leaves it (a return, a yield, or an
// exception going out). The recording of a thread begins with a kCall for
// each selected frame already on its stack, outermost first, so a stream
// never leaves a frame it did not enter.
//
// Threading: everything is called with the GIL held. defineCode and thread
// may be called from any thread; a ThreadEvents is written by its own thread,
// and by the thread that stops the recording (or flushes it) for the last
// events of the others.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::agent {

enum class TraceEventKind : uint8_t {
    kCall,        // value: the code id; line: where the frame starts or resumes
    kLine,        // line: the line about to run
    kReturn,      // the innermost entered frame is left
    kException,   // line: where an exception is raised or goes through
    kTaskSwitch,  // value: the asyncio task (its outermost coroutine) now running, 0 for none
    kPrecise,     // value: 1 when a precise section begins on this thread, 0 when it ends
};

struct TraceEvent {
    int64_t timeNs;  // CLOCK_MONOTONIC inside a precise section (and kPrecise), else 0
    uint64_t value;
    int32_t line;
    TraceEventKind kind;
};

// One thread's events. The object belongs to the sink and lives at least
// until the sink is destroyed; the recorder stops using it after close().
class ThreadEvents {
  public:
    virtual ~ThreadEvents() = default;
    // The next events of the thread, in order (a batch at a time).
    virtual void write(std::span<const TraceEvent> events) = 0;
    // The thread ended, or the recording stopped: nothing more comes.
    virtual void close() = 0;
};

class TraceSink {
  public:
    virtual ~TraceSink() = default;
    // Once per selected code object and recording; the id goes in kCall.
    virtual uint32_t defineCode(std::string_view file, std::string_view qualname,
                                int firstLine) = 0;
    // Once per thread that records (the kernel's thread id).
    virtual ThreadEvents* thread(int64_t nativeThreadId) = 0;
};

// Keeps up to a bounded number of events in memory, for the tests to read
// back (vigil._vigil.trace_collected); the rest are counted as dropped.
class CollectingSink final : public TraceSink {
  public:
    struct Code {
        std::string file;
        std::string qualname;
        int firstLine;
    };
    // An event replayed: the code it happened in is known (kNoCode when the
    // stream left more frames than it entered, which would be a bug).
    struct Replayed {
        int64_t thread;
        uint64_t task;  // the thread's task at the event
        TraceEventKind kind;
        uint32_t code;
        int32_t line;
        int64_t timeNs;
        uint64_t value;
    };
    static constexpr uint32_t kNoCode = UINT32_MAX;

    explicit CollectingSink(size_t limit);
    ~CollectingSink() override;

    uint32_t defineCode(std::string_view file, std::string_view qualname, int firstLine) override;
    ThreadEvents* thread(int64_t nativeThreadId) override;

    // Every thread's events in order, thread after thread.
    std::vector<Replayed> replay() const;
    const Code& code(uint32_t id) const { return codes_[id]; }
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    uint64_t count(TraceEventKind kind) const;

  private:
    class Thread;

    size_t limit_;
    std::atomic<size_t> kept_{0};
    std::atomic<uint64_t> dropped_{0};
    mutable std::mutex mutex_;  // codes_ and threads_
    std::vector<Code> codes_;
    std::vector<std::unique_ptr<Thread>> threads_;
};

// Counts events and forgets them: what the recorder costs without a writer
// (bench/trace_capture_bench.py).
class CountingSink final : public TraceSink {
  public:
    CountingSink();
    ~CountingSink() override;
    uint32_t defineCode(std::string_view, std::string_view, int) override;
    ThreadEvents* thread(int64_t nativeThreadId) override;
    uint64_t count(TraceEventKind kind) const;

  private:
    class Thread;

    std::atomic<uint32_t> codes_{0};
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<Thread>> threads_;
};

}  // namespace vigil::agent
