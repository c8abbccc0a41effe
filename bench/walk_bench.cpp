// Cost of one stack walk of a live process, with warm caches, against the
// cost of a single 8-byte read of the same process (the floor of any walk).
//
// Usage: vigil_bench_walk PID [BATCHES] [WALKS_PER_BATCH]
// Prints one JSON object: medians over batches, interleaving walk and
// baseline batches so that noise hits both alike.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"

#include "core/python_process.h"

namespace {

using Clock = std::chrono::steady_clock;

template <typename Work>
double nanosecondsPerCall(int calls, Work&& work) {
    auto start = Clock::now();
    for (int i = 0; i < calls; ++i) work();
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / calls;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace vigil;
    using bench::median;
    if (argc < 2) {
        std::fprintf(stderr, "usage: vigil_bench_walk PID [BATCHES] [WALKS_PER_BATCH]\n");
        return 2;
    }
    pid_t pid = std::atoi(argv[1]);
    int batches = argc > 2 ? std::atoi(argv[2]) : 51;
    int perBatch = argc > 3 ? std::atoi(argv[3]) : 2000;
    PythonProcess process(pid, RuntimeStrategy::kAuto, [](std::string_view) {});
    Snapshot snapshot = process.snapshot({});
    // The thread with exactly 20 frames, as the benchmark target parks them.
    auto thread = std::find_if(snapshot.threads.begin(), snapshot.threads.end(),
                               [](const ThreadSnapshot& t) { return t.frames.size() == 20; });
    if (thread == snapshot.threads.end()) {
        std::fprintf(stderr, "no thread with 20 frames in process %d\n", pid);
        return 1;
    }
    StackWalker& walker = process.walker();
    std::vector<RawFrame> frames;
    frames.reserve(64);
    ThreadStateView view;
    uint64_t word = 0;
    uint64_t address = thread->threadState;
    std::vector<double> walks, checkedWalks, baselines;
    for (int batch = 0; batch < batches; ++batch) {
        baselines.push_back(
            nanosecondsPerCall(perBatch, [&] { process.memory().readPointer(address, word); }));
        walks.push_back(nanosecondsPerCall(perBatch, [&] { walker.walk(address, view, frames); }));
        checkedWalks.push_back(nanosecondsPerCall(perBatch, [&] {
            walker.walk(address, view, frames);
            walker.frameUnchanged(view);
        }));
    }
    double walk = median(walks), checked = median(checkedWalks), baseline = median(baselines);
    fmt::print(
        "{{\"python\": \"{}\", \"frames\": {}, \"walk_us\": {:.3f}, \"walk_checked_us\": {:.3f}, "
        "\"read_8_bytes_us\": {:.3f}, \"walk_over_read\": {:.2f}, \"batches\": {}, "
        "\"walks_per_batch\": {}}}\n",
        process.layout().version.str(), frames.size(), walk / 1000, checked / 1000, baseline / 1000,
        walk / baseline, batches, perBatch);
    return 0;
}
