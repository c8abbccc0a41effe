// A trace of known structure for the replay's tests (test_replay.cpp, and
// write_trace.cpp for tests/python/test_replay.py): two threads of a small
// program whose sources are written next to it, with recursion, an
// exception caught, calls in both threads, and several blocks per thread.
//
// prog.py, thread 101:           worker.py, thread 202:
//    1 def main():                  1 import prog
//    2     x = 3                    2
//    3     total = fact(x)          3 def work():
//    4     try:                     4     for item in range(2):
//    5         fail()               5         handle(item)
//    6     except ValueError:       6     return "done"
//    7         total += 1           7
//    8     return total             8 def handle(item):
//    9                              9     return item * 2
//   10 def fact(n):
//   11     if n > 1:
//   12         return n * fact(n - 1)
//   13     return 1
//   ...
//   20 def fail():
//   21     raise ValueError("no")
//
// Every event carries its own timestamp (precise mode), and one thread of
// the test appends them all, waiting for the clock to move after each: the
// order of the events in time is the order below, with no tie.
#pragma once

#include <time.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "core/agent_state.h"
#include "trace/trace_writer.h"

namespace vigil::testing {

inline constexpr int32_t kMainThread = 101;
inline constexpr int32_t kWorkerThread = 202;

inline const char* const kProgSource =
    "def main():\n    x = 3\n    total = fact(x)\n    try:\n        fail()\n"
    "    except ValueError:\n        total += 1\n    return total\n\n"
    "def fact(n):\n    if n > 1:\n        return n * fact(n - 1)\n    return 1\n"
    "\n\n\n\n\n\n"
    "def fail():\n    raise ValueError(\"no\")\n";
inline const char* const kWorkerSource =
    "import prog\n\ndef work():\n    for item in range(2):\n        handle(item)\n"
    "    return \"done\"\n\ndef handle(item):\n    return item * 2\n";

class KnownTrace {
  public:
    // Writes the sources into sourceDir and records into `writer`.
    KnownTrace(TraceWriter& writer, const std::string& sourceDir)
        : writer_(writer),
          prog_(sourceDir + "/prog.py"),
          worker_(sourceDir + "/worker.py"),
          a_(writer.thread(kMainThread)),
          b_(writer.thread(kWorkerThread)) {
        std::ofstream(prog_) << kProgSource;
        std::ofstream(worker_) << kWorkerSource;
        main_ = writer.defineCode(prog_, "main", 1);
        fact_ = writer.defineCode(prog_, "fact", 10);
        fail_ = writer.defineCode(prog_, "fail", 20);
        work_ = writer.defineCode(worker_, "work", 3);
        handle_ = writer.defineCode(worker_, "handle", 8);
        writer.keepSource(prog_);
        writer.keepSource(worker_);
    }

    // The first part: up to fact(1) at line 13, in blocks cut by flushes.
    void firstPart() {
        call(a_, main_, 1), line(a_, 2), line(a_, 3);
        call(b_, work_, 3), line(b_, 4), line(b_, 5);
        call(a_, fact_, 10), line(a_, 11), line(a_, 12), call(a_, fact_, 10), line(a_, 11);
        line(a_, 12);
        writer_.flush();
        call(b_, handle_, 8), line(b_, 9), ret(b_);
        // A block of thread 101 entirely below main's frame: `n` skips it.
        call(a_, fact_, 10), line(a_, 11), line(a_, 13);
        writer_.flush();
    }

    // The rest, to the end of both threads.
    void secondPart() {
        ret(a_), ret(a_), ret(a_);
        writer_.flush();
        line(a_, 4), line(a_, 5), call(a_, fail_, 20), line(a_, 21), exception(a_, 21), ret(a_);
        exception(a_, 5);
        line(b_, 4), line(b_, 5), call(b_, handle_, 8), line(b_, 9), ret(b_), line(b_, 4);
        line(b_, 6), ret(b_);
        writer_.flush();
        line(a_, 6), line(a_, 7), line(a_, 8), ret(a_);
        writer_.flush();
    }

  private:
    // After each event the clock has moved on: no two events share a time.
    static void tick() {
        int64_t now = clockNs(CLOCK_MONOTONIC);
        while (clockNs(CLOCK_MONOTONIC) <= now) {
        }
    }
    void call(ThreadTrace* thread, uint32_t code, uint32_t line) {
        thread->call(code, line), tick();
    }
    void line(ThreadTrace* thread, uint32_t line) { thread->line(line), tick(); }
    void ret(ThreadTrace* thread) { thread->ret(), tick(); }
    void exception(ThreadTrace* thread, uint32_t line) { thread->exception(line), tick(); }

    TraceWriter& writer_;
    std::string prog_, worker_;
    ThreadTrace* a_;
    ThreadTrace* b_;
    uint32_t main_ = 0, fact_ = 0, fail_ = 0, work_ = 0, handle_ = 0;
};

inline TraceOptions preciseOptions() {
    TraceOptions options;
    options.precise = true;
    return options;
}

}  // namespace vigil::testing
