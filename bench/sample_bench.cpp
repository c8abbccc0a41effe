// Cost of one sampling round of a live process (walk every thread, filter,
// intern frames, add to the profile), without the timer: the work vigil does
// per sample, apart from waking up. Interleaved with baseline batches of one
// 8-byte read of the target, medians of batches.
//
// Usage: vigil_bench_sample PID [BATCHES] [ROUNDS_PER_BATCH] [--idle]
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"

#include "core/sampler.h"

namespace {

using vigil::bench::wallNs;

double cpuNs() {
    timespec now;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return now.tv_sec * 1e9 + now.tv_nsec;
}

// CPU time of one clock_nanosleep wakeup at 1 kHz, doing nothing else: on a
// VM the timer itself can cost more than a sample.
double wakeupCpuNs() {
    double start = cpuNs();
    double next = wallNs();
    for (int i = 0; i < 2000; ++i) {
        next += 1e6;
        timespec deadline{static_cast<time_t>(next / 1e9), static_cast<long>(std::fmod(next, 1e9))};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr);
    }
    return (cpuNs() - start) / 2000;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace vigil;
    using bench::median;
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: vigil_bench_sample PID [BATCHES] [ROUNDS_PER_BATCH] [--idle]\n");
        return 2;
    }
    pid_t pid = std::atoi(argv[1]);
    int batches = argc > 2 ? std::atoi(argv[2]) : 31;
    int rounds = argc > 3 ? std::atoi(argv[3]) : 2000;
    bool idle = argc > 4 && std::strcmp(argv[4], "--idle") == 0;
    PythonProcess process(pid, RuntimeStrategy::kAuto, [](std::string_view) {});
    StringTable strings;
    Profile profile(strings);
    ProcessSampler sampler(process, profile, {idle, false, false, false});
    uint64_t word = 0;
    std::vector<double> wall, cpu, baseline;
    int64_t time = 0;
    for (int batch = 0; batch < batches; ++batch) {
        double start = wallNs();
        for (int i = 0; i < rounds; ++i)
            process.memory().readPointer(process.target().runtimeAddress, word);
        baseline.push_back((wallNs() - start) / rounds);
        double startWall = wallNs(), startCpu = cpuNs();
        for (int i = 0; i < rounds; ++i) sampler.sample(time += 1000);
        wall.push_back((wallNs() - startWall) / rounds);
        cpu.push_back((cpuNs() - startCpu) / rounds);
    }
    prctl(PR_SET_TIMERSLACK, 1);
    double wakeup = wakeupCpuNs();
    fmt::print(
        "{{\"python\": \"{}\", \"round_wall_us\": {:.3f}, \"round_cpu_us\": {:.3f}, "
        "\"read_8_bytes_us\": {:.3f}, "
        "\"wakeup_cpu_us\": {:.3f}, \"samples\": {}, \"invalid\": {}}}\n",
        process.layout().version.str(), median(wall) / 1000, median(cpu) / 1000,
        median(baseline) / 1000, wakeup / 1000, profile.stats.samples,
        profile.stats.invalidSamples);
    return 0;
}
