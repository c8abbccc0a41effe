#include "core/sampler.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {
namespace {

constexpr size_t kMaxThreads = 100000;
// Threads not seen for this many rounds are forgotten (and their files closed).
constexpr uint64_t kForgetAfterRounds = 256;

}  // namespace

ProcessSampler::ProcessSampler(PythonProcess& process, Profile& profile,
                               const SamplerOptions& options)
    : process_(process), profile_(profile), options_(options) {
    frames_.reserve(256);
    stack_.reserve(256);
    if (options.perProcess) {
        StringTable& strings = profile.strings();
        std::string label = fmt::format("process {} ({})", pid(), process.info().commandLine());
        processRoot_ =
            profile.frame(strings.intern(label), strings.intern(""), 0, FrameKind::kProcess);
    }
}

ProcessSampler::~ProcessSampler() {
    for (auto& [id, info] : threads_) {
        if (info.statFd >= 0) ::close(info.statFd);
    }
}

bool ProcessSampler::sample(int64_t timeNs, RoundSummary* summary) {
    RoundSummary local;
    RoundSummary& round = summary ? *summary : local;
    ++round_;
    process_.codes().setClock(timeNs);
    int threadsBefore = round.threads;
    const PyLayout& layout = process_.layout();
    try {
        uint64_t interp = 0;
        MemorySource& memory = process_.memory();
        if (!memory.readPointer(process_.target().runtimeAddress + layout.runtime.interpreters_head,
                                interp)) {
            return process_.info().alive();
        }
        for (int count = 0; interp != 0 && count < 256; ++count) {
            if (!sampleInterpreter(interp, timeNs, round)) break;
            if (!memory.readPointer(interp + layout.interp.next, interp)) break;
        }
    } catch (const ProcessExitedError&) {
        return false;
    }
    if (round_ % kForgetAfterRounds == 0) forgetGoneThreads();
    return round.threads > threadsBefore || process_.info().alive();
}

bool ProcessSampler::sampleInterpreter(uint64_t interp, int64_t timeNs, RoundSummary& summary) {
    const PyLayout& layout = process_.layout();
    uint64_t holder =
        gilHolder(process_.memory(), layout, process_.target().runtimeAddress, interp);
    summary.gilHeld = summary.gilHeld || holder != 0;
    if (options_.gilOnly) {
        if (holder) sampleThread(holder, holder, timeNs, summary);
        return true;
    }
    uint64_t state = 0;
    if (!process_.memory().readPointer(interp + layout.interp.threads_head, state)) return false;
    for (size_t count = 0; state != 0 && count < kMaxThreads; ++count) {
        state = sampleThread(state, holder, timeNs, summary);
    }
    return true;
}

uint64_t ProcessSampler::sampleThread(uint64_t threadState, uint64_t gilHolder, int64_t timeNs,
                                      RoundSummary& summary) {
    ThreadStateView view;
    WalkStatus status = process_.walker().walk(threadState, view, frames_);
    RecordingStats& stats = profile_.stats;
    if (status == WalkStatus::kUnreadable) {
        ++stats.invalidSamples;  // the list itself tore: its rest is lost this round
        return 0;
    }
    ++summary.threads;
    ThreadInfo& info = threadInfo(view);
    bool running = threadState == gilHolder || isRunning(info);
    summary.running += running;
    if (!options_.idle && !running) {
        ++stats.idleSamples;
        return view.next;
    }
    if (status == WalkStatus::kTorn) {
        ++stats.invalidSamples;
        return view.next;
    }
    if (frames_.empty()) return view.next;  // a thread with no Python code running
    // Code objects not checked lately are checked now, before their names are used.
    process_.codes().verifyPending();
    for (const RawFrame& frame : frames_) {
        if (!process_.codes().get(frame.code)) return view.next;  // freed meanwhile: drop this one
    }
    stack_.clear();
    if (options_.perProcess) stack_.push_back(processRoot_);
    if (options_.perThread) stack_.push_back(info.root);
    for (auto frame = frames_.rbegin(); frame != frames_.rend(); ++frame)
        stack_.push_back(frameFor(*frame));
    if (profile_.keepsTimeline()) {
        profile_.addTimed(stack_, timeNs, info.track);
    } else {
        profile_.add(stack_);
    }
    ++stats.samples;
    return view.next;
}

ProcessSampler::ThreadInfo& ProcessSampler::threadInfo(const ThreadStateView& view) {
    ThreadInfo& info = threads_[view.threadId];
    info.lastRound = round_;
    if (info.labelled) return info;
    if (view.nativeThreadId > 0) {
        info.tid = static_cast<pid_t>(view.nativeThreadId);
    } else {
        if (!nativeIds_.offset())
            nativeIds_.learn(process_.memory(), {view.threadId}, process_.info().threadIds());
        auto tid = nativeIds_.lookup(process_.memory(), view.threadId);
        info.tid = tid ? *tid : -1;
    }
    if (info.tid > 0) {
        std::string path = fmt::format("/proc/{}/task/{}/stat", pid(), info.tid);
        info.statFd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    labelThread(info, view.threadId);
    return info;
}

void ProcessSampler::labelThread(ThreadInfo& info, uint64_t threadId) {
    // New threads are rare: refresh threading's names only when one appears.
    if (!threadNames_.count(threadId)) {
        uint64_t interp = 0;
        process_.memory().readPointer(
            process_.target().runtimeAddress + process_.layout().runtime.interpreters_head, interp);
        threadNames_ = threadNames(process_.objects(), interp);
    }
    auto name = threadNames_.find(threadId);
    info.name = name != threadNames_.end() ? name->second : fmt::format("{:#x}", threadId);
    std::string label = fmt::format("thread {} ({})", info.name, info.tid);
    StringTable& strings = profile_.strings();
    info.root = profile_.frame(strings.intern(label), strings.intern(""), 0, FrameKind::kThread);
    info.track = profile_.track(info.name, pid(), info.tid);
    info.labelled = true;
}

bool ProcessSampler::isRunning(ThreadInfo& info) {
    char buffer[512];
    if (info.statFd < 0) return false;
    ssize_t got = ::pread(info.statFd, buffer, sizeof(buffer) - 1, 0);
    if (got <= 0) return false;
    std::string_view stat(buffer, got);
    size_t close = stat.rfind(')');
    return close != std::string_view::npos && close + 2 < stat.size() && stat[close + 2] == 'R';
}

FrameId ProcessSampler::frameFor(const RawFrame& raw) {
    const CodeInfo* code = process_.codes().get(raw.code);
    auto [entry, inserted] =
        frameIds_.try_emplace(CodeOffset{raw.code, raw.byteOffset}, CachedFrame{0, 0});
    if (!inserted && entry->second.generation == code->generation) return entry->second.frame;
    // The process interns its names in a table of its own (one per process,
    // as they come and go); the profile keeps one table for all of them.
    const StringTable& names = process_.strings();
    StringTable& strings = profile_.strings();
    FrameId frame =
        profile_.frame(strings.intern(names.get(code->qualname)),
                       strings.intern(names.get(code->filename)), code->lineAt(raw.byteOffset));
    entry->second = {code->generation, frame};
    return frame;
}

void ProcessSampler::forgetGoneThreads() {
    for (auto entry = threads_.begin(); entry != threads_.end();) {
        if (round_ - entry->second.lastRound < kForgetAfterRounds) {
            ++entry;
            continue;
        }
        if (entry->second.statFd >= 0) ::close(entry->second.statFd);
        entry = threads_.erase(entry);
    }
}

}  // namespace vigil
