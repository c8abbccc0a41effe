// What the kernel charges the sampler for one process_vm_readv, by the number
// of pages it reads: each page is pinned before it is copied
// (process_vm_rw_core in mm/process_vm_access.c), so a sample costs about
// one call plus a share per page, whatever the bytes. The shapes are those of
// a sample of a 20-frame thread (the places and sizes `strace` shows
// vigil_bench_sample reading):
//
// - 3.12/3.13: the thread state and the data-stack chunk, 2 pages;
// - 3.11: the GIL, the thread state and the chunk, 3 pages, or 4 when the
//   thread state straddles a page boundary (pyenv's 3.11.7: the main thread's
//   state lies in _PyRuntime 0x108 bytes before the end of a page).
//
// The memory read is a forked child's, sleeping; the shapes are timed in
// turn, many times over, and the medians printed.
//
// Usage: vigil_bench_readv_pages [REPEATS] [CALLS]
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kPages = 32;

struct Place {
    size_t offset;  // in the child's mapping
    size_t size;
};

struct Shape {
    const char* what;
    std::vector<Place> places;
};

const std::vector<Shape> kShapes = {
    {"8 bytes, 1 page (the floor)", {{0, 8}}},
    {"3.12/3.13: thread state + chunk, 2 pages", {{10 * kPage + 0x6c8, 248}, {20 * kPage, 2720}}},
    {"3.11: GIL + thread state + chunk, 3 pages",
     {{2 * kPage + 0x6b0, 12}, {10 * kPage + 0x0f8, 312}, {20 * kPage, 2720}}},
    {"3.11, thread state across a page boundary, 4 pages",
     {{2 * kPage + 0x6b0, 12}, {10 * kPage + 0xef8, 312}, {20 * kPage, 2720}}},
};

// Microseconds per call of `calls` reads of shape from pid.
double timeShape(pid_t pid, char* remoteBase, const Shape& shape, int calls) {
    static std::vector<char> buffer(kPages * kPage);
    std::vector<iovec> local, remote;
    size_t used = 0;
    for (const Place& place : shape.places) {
        local.push_back({buffer.data() + used, place.size});
        remote.push_back({remoteBase + place.offset, place.size});
        used += place.size;
    }
    double start = vigil::bench::wallNs();
    for (int call = 0; call < calls; ++call) {
        if (process_vm_readv(pid, local.data(), local.size(), remote.data(), remote.size(), 0) !=
            static_cast<ssize_t>(used)) {
            std::perror("process_vm_readv");
            std::exit(1);
        }
    }
    return (vigil::bench::wallNs() - start) / 1e3 / calls;
}

}  // namespace

int main(int argc, char** argv) {
    int repeats = argc > 1 ? std::atoi(argv[1]) : 31;
    int calls = argc > 2 ? std::atoi(argv[2]) : 5000;
    // Mapped and touched before fork: the child has every page present.
    auto* memory = static_cast<char*>(
        mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (memory == MAP_FAILED) {
        std::perror("mmap");
        return 1;
    }
    std::memset(memory, 1, kPages * kPage);
    pid_t child = fork();
    if (child == 0) {
        for (;;) pause();
    }
    std::vector<std::vector<double>> times(kShapes.size());
    for (int repeat = 0; repeat < repeats; ++repeat) {
        for (size_t shape = 0; shape < kShapes.size(); ++shape)
            times[shape].push_back(timeShape(child, memory, kShapes[shape], calls));
    }
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    double floor = vigil::bench::median(times[0]);
    fmt::print("| read | µs per process_vm_readv (median of {}) | times the floor |\n", repeats);
    fmt::print("|---|---|---|\n");
    for (size_t shape = 0; shape < kShapes.size(); ++shape) {
        double us = vigil::bench::median(times[shape]);
        fmt::print("| {} | {:.2f} | {:.2f} |\n", kShapes[shape].what, us, us / floor);
    }
    return 0;
}
