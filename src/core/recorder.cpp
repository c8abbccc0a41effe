#include "core/recorder.h"

#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "core/errors.h"

extern char** environ;

namespace vigil {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
// How often children are looked for with --subprocesses.
constexpr int64_t kFollowEveryNs = 100'000'000;
// How long a launched program may take to start its interpreter.
constexpr auto kStartupTimeout = std::chrono::seconds(30);

int64_t nowNs() {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * kNsPerSecond + now.tv_nsec;
}

void sleepUntil(int64_t deadlineNs) {
    timespec deadline{static_cast<time_t>(deadlineNs / kNsPerSecond),
                      static_cast<long>(deadlineNs % kNsPerSecond)};
    // An interrupting signal ends the sleep early: the loop then checks stop.
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr);
}

// Children of every thread of pid, from /proc/PID/task/TID/children.
std::vector<pid_t> childrenOf(pid_t pid) {
    std::vector<pid_t> children;
    ProcessInfo info(pid);
    for (pid_t tid : info.threadIds()) {
        std::ifstream file(fmt::format("/proc/{}/task/{}/children", pid, tid));
        pid_t child;
        while (file >> child) children.push_back(child);
    }
    return children;
}

}  // namespace

Recorder::Recorder(Profile& profile, const RecorderOptions& options, const Narrator& narrate)
    : profile_(profile), options_(options), narrate_(narrate) {}

// A program vigil started never outlives the recording, whatever ended it.
Recorder::~Recorder() {
    stopChild();
}

void Recorder::attach(pid_t pid) {
    auto process = std::make_unique<PythonProcess>(pid, RuntimeStrategy::kAuto, narrate_);
    auto sampler = std::make_unique<ProcessSampler>(*process, profile_, options_.sampler);
    targets_.push_back({std::move(process), std::move(sampler)});
    roots_.push_back(pid);
    seen_.insert(pid);
}

bool Recorder::tryAttach(pid_t pid) {
    seen_.insert(pid);
    try {
        auto process = std::make_unique<PythonProcess>(pid, RuntimeStrategy::kAuto, narrate_);
        auto sampler = std::make_unique<ProcessSampler>(*process, profile_, options_.sampler);
        narrate_(fmt::format("following process {} ({})", pid, process->info().commandLine()));
        targets_.push_back({std::move(process), std::move(sampler)});
        return true;
    } catch (const Error& error) {
        narrate_(fmt::format("not following process {}: {}", pid, error.what()));
        return false;
    }
}

pid_t Recorder::launch(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    int error = posix_spawnp(&child_, args[0], nullptr, nullptr, args.data(), environ);
    if (error != 0) {
        child_ = -1;
        throw UsageError(fmt::format("cannot start {}: {}", argv[0], std::strerror(error)));
    }
    auto deadline = std::chrono::steady_clock::now() + kStartupTimeout;
    auto pause = std::chrono::microseconds(500);
    std::string lastProblem;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(child_, &status, WNOHANG) == child_) {
            child_ = -1;
            throw NotPythonError(
                fmt::format("{} exited before its Python interpreter could be read", argv[0]));
        }
        try {
            attach(child_);
            return child_;
        } catch (const NotPythonError& notYet) {
            lastProblem = notYet.what();  // the interpreter is not initialised yet
        } catch (const Error&) {
            stopChild();  // never leave behind a program vigil started
            throw;
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(20000));
    }
    stopChild();
    throw NotPythonError(fmt::format("{} did not start a Python interpreter in {} s: {}", argv[0],
                                     kStartupTimeout.count(), lastProblem));
}

void Recorder::followChildren() {
    std::vector<pid_t> pending;
    for (const Target& target : targets_) pending.push_back(target.process->info().pid());
    pending.insert(pending.end(), roots_.begin(), roots_.end());
    std::set<pid_t> visited;
    while (!pending.empty()) {
        pid_t pid = pending.back();
        pending.pop_back();
        if (!visited.insert(pid).second) continue;
        std::vector<pid_t> children;
        try {
            children = childrenOf(pid);
        } catch (const Error&) {
            continue;  // gone meanwhile
        }
        for (pid_t child : children) {
            // A child caught while its interpreter starts is tried again for
            // a while before it is taken for a non-Python process.
            if (!seen_.count(child) && !tryAttach(child) && ++attachTries_[child] < kAttachTries) {
                seen_.erase(child);
            }
            pending.push_back(child);
        }
    }
}

void Recorder::run(const std::atomic<bool>& stop,
                   const std::function<void(const RoundInfo&)>& onRound) {
    RecordingStats& stats = profile_.stats;
    stats.requestedHz = options_.rateHz;
    int64_t period = static_cast<int64_t>(kNsPerSecond / options_.rateHz);
    // The default 50 us timer slack would make every round of a 10 kHz
    // recording late; ask the kernel to wake us on time.
    prctl(PR_SET_TIMERSLACK, 1);
    int64_t start = nowNs();
    int64_t end = options_.durationSeconds > 0
                      ? start + static_cast<int64_t>(options_.durationSeconds * kNsPerSecond)
                      : INT64_MAX;
    int64_t nextFollow = start;
    // Rounds are due on a regular grid, each moved by a little jitter: it
    // keeps them from locking step with a periodic workload, which would
    // over- or under-count whatever runs at the same phase every time
    // (aliasing); the mean rate stays exact.
    int64_t grid = start;
    int64_t deadline = start;
    std::minstd_rand random(static_cast<unsigned>(start));
    std::uniform_int_distribution<int64_t> jitter(-period / 4, period / 4);
    while (!stop.load() && !targets_.empty()) {
        sleepUntil(deadline);
        int64_t now = nowNs();
        if (stop.load() || now >= end) break;
        if (now - deadline > period / 5) ++stats.lateTicks;
        RoundInfo round;
        round.elapsedNs = now - start;
        sampleRound(round);
        ++stats.ticks;
        stats.durationSeconds = (nowNs() - start) / 1e9;
        onRound(round);
        if (options_.subprocesses && now >= nextFollow) {
            followChildren();
            nextFollow = now + kFollowEveryNs;
        }
        // Rounds that could not run on time are skipped, not bunched up.
        grid += period;
        int64_t after = nowNs();
        if (after > grid + period) {
            int64_t skipped = (after - grid) / period;
            stats.missedTicks += skipped;
            grid += skipped * period;
        }
        deadline = grid + jitter(random);
    }
    stats.durationSeconds = (nowNs() - start) / 1e9;
}

void Recorder::sampleRound(RoundInfo& round) {
    for (auto target = targets_.begin(); target != targets_.end();) {
        if (target->sampler->sample(round.elapsedNs, &round.summary)) {
            ++target;
            continue;
        }
        const std::string& problem = target->sampler->problem();
        ended_.push_back(
            problem.empty()
                ? fmt::format("process {} exited after {:.1f} s", target->sampler->pid(),
                              round.elapsedNs / 1e9)
                : fmt::format("stopped sampling process {}: {}", target->sampler->pid(), problem));
        target = targets_.erase(target);
    }
    round.processes = targets_.size();
}

void Recorder::stopChild() {
    if (child_ <= 0) return;
    int status = 0;
    if (waitpid(child_, &status, WNOHANG) == 0) {
        kill(child_, SIGTERM);
        for (int i = 0; i < 500 && waitpid(child_, &status, WNOHANG) == 0; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (waitpid(child_, &status, WNOHANG) == 0) {
            kill(child_, SIGKILL);
            waitpid(child_, &status, 0);
        }
    }
    child_ = -1;
}

}  // namespace vigil
