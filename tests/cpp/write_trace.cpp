// Writes a trace with TraceWriter, for tests/python/test_analyse.py: a
// program of BASE/app.py (written too, and kept with the trace) whose
// slow() sleeps 200 ms in a precise section, amid ordinary lines, on two
// threads.
//
//   vigil_write_trace BASE
//
// The trace goes to BASE/<run>/app/ (BASE/latest/app); stdout gets one
// JSON line: the source file, the sleeping line, the bounds of its real
// duration, and the two threads' native ids.
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "core/agent_state.h"
#include "trace/trace_writer.h"

namespace {

using namespace vigil;

constexpr const char* kSource = R"(import time


def busy(n):
    total = 0
    for i in range(n):
        total += i
    return total


def slow():
    time.sleep(0.2)
    return 1


def worker():
    for _ in range(50):
        busy(10)
)";

int64_t now() {
    return clockNs(CLOCK_MONOTONIC);
}

struct Codes {
    uint32_t busy, slow, worker;
};

void busy(ThreadTrace* thread, const Codes& codes, int n) {
    thread->call(codes.busy, 4);
    thread->line(5);
    for (int i = 0; i < n; ++i) {
        thread->line(6);
        thread->line(7);
    }
    thread->line(6);
    thread->line(8);
    thread->ret();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: vigil_write_trace BASE\n");
        return 2;
    }
    std::string base = argv[1];
    std::string file = base + "/app.py";
    std::ofstream(file) << kSource;
    int32_t mainThread = static_cast<int32_t>(::syscall(SYS_gettid));
    int32_t workerThread = 0;
    int64_t least = 0, most = 0;
    std::string dir;
    {
        auto writer = TraceWriter::open(base, "app", ::getpid());
        dir = writer->dir();
        Codes codes{writer->defineCode(file, "busy", 4), writer->defineCode(file, "slow", 11),
                    writer->defineCode(file, "worker", 16)};
        writer->keepSource(file);
        std::thread other([&] {
            workerThread = static_cast<int32_t>(::syscall(SYS_gettid));
            ThreadTrace* thread = writer->thread(workerThread);
            thread->call(codes.worker, 16);
            for (int i = 0; i < 50; ++i) {
                thread->line(17);
                thread->line(18);
                busy(thread, codes, 10);
            }
            thread->line(17);
            thread->ret();
            thread->end();
        });
        ThreadTrace* thread = writer->thread(mainThread);
        busy(thread, codes, 1000);
        thread->precise(true);
        thread->call(codes.slow, 11);
        int64_t before = now();
        thread->line(12);
        int64_t started = now();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        int64_t woke = now();
        thread->line(13);
        int64_t after = now();
        thread->ret();
        thread->precise(false);
        busy(thread, codes, 1000);
        least = woke - started;
        most = after - before;
        other.join();
    }
    fmt::print(
        "{{\"dir\": \"{}\", \"file\": \"{}\", \"line\": 12, \"least_ns\": {}, \"most_ns\": {}, "
        "\"main_thread\": {}, \"worker_thread\": {}}}\n",
        dir, file, least, most, mainThread, workerThread);
    return 0;
}
