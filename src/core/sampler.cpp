#include "core/sampler.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>

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
    path_.reserve(256);
    readFirstInterpreter();
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
    int threadsBefore = round.threads;
    try {
        // Code objects queued last round are checked before any name is used.
        process_.codes().setClock(timeNs);
        process_.codes().verifyPending();
        InterpreterRead read;
        uint64_t interp = firstInterpreter_;
        for (int count = 0; interp != 0 && count < 256; ++count, interp = read.next) {
            if (!sampleInterpreter(interp, count == 0, timeNs, round, read)) break;
        }
        if (firstInterpreter_ == 0) readFirstInterpreter();
    } catch (const ProcessExitedError&) {
        return false;
    } catch (const Error& error) {
        // E.g. the process became unreadable (exec of a setuid program).
        problem_ = error.what();
        return false;
    }
    if (round_ % kForgetAfterRounds == 0) forgetGoneThreads();
    return round.threads > threadsBefore || process_.info().alive();
}

void ProcessSampler::readFirstInterpreter() {
    const PyLayout& layout = process_.layout();
    process_.memory().readPointer(
        process_.target().runtimeAddress + layout.runtime.interpreters_head, firstInterpreter_);
}

size_t ProcessSampler::interpreterRequests(uint64_t interp, bool first, InterpreterRead& out,
                                           std::array<ReadRequest, 5>& requests) {
    const PyLayout& layout = process_.layout();
    auto gil = gils_.find(interp);
    if (gil == gils_.end()) {
        auto location =
            gilLocation(process_.memory(), layout, process_.target().runtimeAddress, interp);
        if (!location) return 0;
        if (gils_.size() > 256) gils_.clear();
        gil = gils_.emplace(interp, *location).first;
    }
    out = {};
    out.head = interp;
    requests = {{
        {gil->second.locked, &out.gilLocked, 4},
        {gil->second.holder, &out.gilHolder, 8},
        {static_cast<uint64_t>(interp + layout.interp.threads_head), &out.firstThread, 8},
        {static_cast<uint64_t>(interp + layout.interp.next), &out.next, 8},
        {process_.target().runtimeAddress + layout.runtime.interpreters_head, &out.head, 8},
    }};
    // Whether the first interpreter still heads the list is checked now and
    // then only: interpreters come and go far more rarely than samples, and
    // the check is one more place for the kernel to read.
    bool checkHead = first && round_ % kCheckHeadEveryRounds == 0;
    return checkHead ? requests.size() : requests.size() - 1;
}

bool ProcessSampler::guessFirstThread(uint64_t interp, bool first,
                                      std::span<const ReadRequest> requests, InterpreterRead& read,
                                      ThreadStateView& view, WalkStatus& status) {
    // The thread that headed the list last round is walked at once, with
    // only the GIL read along. It still heads the list if its prev is null
    // (a new thread is put in front of it, and a freed thread state's first
    // word holds the allocator's free-list link). Rounds that check the
    // list of interpreters, and processes with more than one, read the
    // interpreter's fields as well.
    bool guess = first && !options_.gilOnly && firstThread_ != 0 && secondInterpreter_ == 0 &&
                 requests.size() == kThreadListRequests;
    if (!guess) return false;
    // 3.12+ thread states say themselves whether they hold the GIL.
    bool needGil = process_.layout().thread.status == kNone;
    status = process_.walker().walk(firstThread_, view, frames_,
                                    requests.first(needGil ? kGilRequests : 0));
    if (status == WalkStatus::kUnreadable || view.prev != 0 || view.interp != interp) return false;
    read.firstThread = firstThread_;
    return true;
}

bool ProcessSampler::sampleInterpreter(uint64_t interp, bool first, int64_t timeNs,
                                       RoundSummary& summary, InterpreterRead& read) {
    std::array<ReadRequest, 5> storage;
    size_t count = interpreterRequests(interp, first, read, storage);
    if (count == 0) return false;
    std::span<const ReadRequest> requests(storage.data(), count);
    StackWalker& walker = process_.walker();
    ThreadStateView view;
    WalkStatus status = WalkStatus::kUnreadable;
    bool guessed = guessFirstThread(interp, first, requests, read, view, status);
    if (!guessed && process_.memory().readMany(requests) != requests.size()) return false;
    if (first && read.head != interp) {
        firstInterpreter_ = read.head;  // the list changed: sample the new head next round
        return false;
    }
    if (first && !guessed) {
        firstThread_ = read.firstThread;
        secondInterpreter_ = read.next;
    }
    uint64_t holder = read.gilLocked ? read.gilHolder : 0;
    summary.gilHeld = summary.gilHeld || holder != 0;
    if (options_.gilOnly) {
        if (holder) account(walker.walk(holder, view, frames_), view, holder, timeNs, summary);
        return true;
    }
    uint64_t state = guessed ? account(status, view, holder, timeNs, summary) : read.firstThread;
    for (size_t count = 0; state != 0 && count < kMaxThreads; ++count) {
        WalkStatus walked = walker.walk(state, view, frames_);
        if (walked != WalkStatus::kUnreadable && view.interp != interp) {
            ++profile_.stats
                  .invalidSamples;  // freed meanwhile: the rest of the list is not trusted
            break;
        }
        state = account(walked, view, holder, timeNs, summary);
    }
    return true;
}

uint64_t ProcessSampler::account(WalkStatus status, const ThreadStateView& view, uint64_t gilHolder,
                                 int64_t timeNs, RoundSummary& summary) {
    RecordingStats& stats = profile_.stats;
    if (status == WalkStatus::kUnreadable) {
        ++stats.invalidSamples;  // the list itself tore: its rest is lost this round
        return 0;
    }
    ++summary.threads;
    ThreadInfo& info = threadInfo(view);
    bool holdsGil = view.holdsGil ? *view.holdsGil : view.address == gilHolder;
    summary.gilHeld = summary.gilHeld || holdsGil;
    // Before 3.11 the stat file is also how a thread id reused by a new
    // thread is noticed (isRunning marks the old one stale).
    bool askKernel = !options_.idle || options_.countRunning || view.nativeThreadId <= 0;
    bool running = holdsGil || (askKernel && isRunning(info));
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
    if (!info.labelled) {
        ++stats.invalidSamples;  // its kernel id is not known yet (first rounds, before 3.11)
        return view.next;
    }
    NodeId leaf = addToProfile(info);
    profile_.recordTime(leaf, timeNs, info.track);
    ++stats.samples;
    return view.next;
}

NodeId ProcessSampler::addToProfile(ThreadInfo& info) {
    // Consecutive samples of a thread share most of their stack: the part
    // unchanged since its last sample keeps its nodes, and only the rest is
    // looked up.
    StackMemo& memo = info.memo;
    size_t depth = frames_.size();
    memo.keys.resize(depth);
    memo.nodes.resize(depth);
    NodeId parent = rootNode(info);
    bool same = memo.root == parent;
    memo.root = parent;
    for (size_t i = 0; i < depth; ++i) {
        const RawFrame& raw = frames_[depth - 1 - i];
        StackMemo::Key key{raw.code, raw.byteOffset, raw.info->generation};
        same = same && i < memo.valid && memo.keys[i] == key;
        if (!same) {
            memo.keys[i] = key;
            memo.nodes[i] = profile_.childOf(parent, frameFor(raw));
        }
        parent = memo.nodes[i];
    }
    memo.valid = depth;
    path_.clear();
    if (info.rootPath.size()) path_.assign(info.rootPath.begin(), info.rootPath.end());
    path_.insert(path_.end(), memo.nodes.begin(), memo.nodes.end());
    profile_.countPath(path_);
    return parent;
}

NodeId ProcessSampler::rootNode(ThreadInfo& info) {
    if (!info.rootPath.empty() || !(options_.perProcess || options_.perThread)) {
        return info.rootPath.empty() ? Profile::kRoot : info.rootPath.back();
    }
    NodeId node = Profile::kRoot;
    if (options_.perProcess) info.rootPath.push_back(node = profile_.childOf(node, processRoot_));
    if (options_.perThread) info.rootPath.push_back(node = profile_.childOf(node, info.root));
    return node;
}

ProcessSampler::ThreadInfo& ProcessSampler::threadInfo(const ThreadStateView& view) {
    ThreadInfo& info = threads_[view.threadId];
    // glibc reuses the pthread_t of an ended thread for a new one: a kernel
    // id that changed (3.11+) or a stat file that went away means a new thread.
    if (info.labelled &&
        (info.stale || (view.nativeThreadId > 0 && view.nativeThreadId != info.tid))) {
        if (info.statFd >= 0) ::close(info.statFd);
        info = ThreadInfo{};
    }
    info.lastRound = round_;
    if (info.labelled) return info;
    if (view.nativeThreadId > 0) {
        info.tid = static_cast<pid_t>(view.nativeThreadId);
    } else {
        info.tid = nativeThreadId(view.threadId);
        // Not learnt yet (one thread other than the main one seen so far):
        // the thread is labelled again once more threads have been seen.
        if (info.tid <= 0) return info;
    }
    if (info.tid > 0) {
        std::string path = fmt::format("/proc/{}/task/{}/stat", pid(), info.tid);
        info.statFd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    labelThread(info, view.threadId);
    return info;
}

pid_t ProcessSampler::nativeThreadId(uint64_t threadId) {
    // Learnt from every thread of the list at once (their kernel ids must
    // all be distinct tasks), retried now and then until it holds.
    if (!nativeIds_.offset() && round_ >= nextLearnRound_) {
        nextLearnRound_ = round_ + 64;
        nativeIds_.learn(process_.memory(), listedPthreads(), process_.info().threadIds(), pid());
    }
    auto tid = nativeIds_.lookup(process_.memory(), threadId);
    return tid ? *tid : -1;
}

std::vector<uint64_t> ProcessSampler::listedPthreads() {
    const PyLayout& layout = process_.layout();
    MemorySource& memory = process_.memory();
    std::vector<uint64_t> pthreads;
    uint64_t state = 0, pthread = 0;
    if (!memory.readPointer(firstInterpreter_ + layout.interp.threads_head, state)) return pthreads;
    while (state != 0 && pthreads.size() < 1024 &&
           memory.readPointer(state + layout.thread.thread_id, pthread)) {
        pthreads.push_back(pthread);
        if (!memory.readPointer(state + layout.thread.next, state)) break;
    }
    return pthreads;
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
    info.rootPath.clear();
    info.labelled = true;
}

bool ProcessSampler::isRunning(ThreadInfo& info) {
    char buffer[512];
    if (info.statFd < 0) return false;
    ssize_t got = ::pread(info.statFd, buffer, sizeof(buffer) - 1, 0);
    if (got <= 0) {
        info.stale = true;  // the task ended: this pthread id will be a new thread
        return false;
    }
    std::string_view stat(buffer, got);
    size_t close = stat.rfind(')');
    return close != std::string_view::npos && close + 2 < stat.size() && stat[close + 2] == 'R';
}

FrameId ProcessSampler::frameFor(const RawFrame& raw) {
    const CodeInfo* code = raw.info;
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
