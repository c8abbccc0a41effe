#include "core/python_process.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {
namespace {

constexpr size_t kMaxInterpreters = 256;
constexpr size_t kMaxThreads = 100000;

}  // namespace

bool Snapshot::complete() const {
    return std::all_of(threads.begin(), threads.end(),
                       [](const ThreadSnapshot& thread) { return thread.consistent; });
}

PythonProcess::PythonProcess(pid_t pid, RuntimeStrategy strategy, const Narrator& narrate)
    : info_(pid),
      memory_(pid),
      target_(discoverPython(info_, memory_, strategy, narrate)),
      objects_(memory_, target_.layout),
      codes_(objects_, strings_),
      walker_(memory_, target_.layout, codes_) {
    if (target_.layout.version.micro < 0) readMicroVersion();
}

void PythonProcess::readMicroVersion() {
    // Before 3.11 no symbol holds the full version: sys.version does.
    uint64_t interp = 0, modules = 0;
    const PyLayout& layout = target_.layout;
    if (!memory_.readPointer(target_.runtimeAddress + layout.runtime.interpreters_head, interp) ||
        !memory_.readPointer(interp + layout.interp.modules, modules)) {
        return;
    }
    uint64_t sys = modules ? objects_.dictLookup(modules, "sys") : 0;
    uint64_t version = sys ? objects_.dictLookup(objects_.moduleDict(sys), "version") : 0;
    auto text = version ? objects_.readStr(version, 16) : std::nullopt;
    int major = 0, minor = 0, micro = 0;
    if (text && std::sscanf(text->c_str(), "%d.%d.%d", &major, &minor, &micro) == 3 &&
        major == layout.version.major && minor == layout.version.minor) {
        target_.layout.version.micro = micro;
    }
}

bool PythonProcess::threadStates(std::vector<std::vector<uint64_t>>& perInterpreter) {
    const PyLayout& layout = target_.layout;
    perInterpreter.clear();
    uint64_t interp = 0;
    if (!memory_.readPointer(target_.runtimeAddress + layout.runtime.interpreters_head, interp))
        return false;
    while (interp != 0 && perInterpreter.size() < kMaxInterpreters) {
        auto& states = perInterpreter.emplace_back();
        uint64_t state = 0;
        if (!memory_.readPointer(interp + layout.interp.threads_head, state)) return false;
        while (state != 0 && states.size() < kMaxThreads) {
            states.push_back(state);
            uint64_t back = 0;
            if (!memory_.readPointer(state + layout.thread.interp, back) || back != interp ||
                !memory_.readPointer(state + layout.thread.next, state)) {
                return false;
            }
        }
        if (!memory_.readPointer(interp + layout.interp.next, interp)) return false;
    }
    return true;
}

bool PythonProcess::walkThread(uint64_t threadState, uint64_t interp, ThreadSnapshot& out,
                               int& torn) {
    ThreadStateView view;
    bool validated = false;
    for (int attempt = 0; attempt < kMaxThreadAttempts; ++attempt) {
        // A thread state that stops pointing to its interpreter was freed:
        // the thread list changed under us.
        WalkStatus status = walker_.walk(threadState, view, rawFrames_);
        if (status == WalkStatus::kUnreadable || view.interp != interp) return false;
        if (status != WalkStatus::kComplete) {
            ++torn;
            continue;
        }
        // Every frame and code object checked out. A thread that did not move
        // meanwhile gives an exact stack; one that never stops moving (it holds
        // the GIL and calls at full speed) gives its last validated walk.
        validated = true;
        keepFrames(view, out);
        if (walker_.frameUnchanged(view)) break;
        if (attempt + 1 >= kMaxMovingAttempts) break;
        ++torn;
    }
    out.consistent = validated;
    if (!validated) out.frames.clear();
    return true;
}

void PythonProcess::keepFrames(const ThreadStateView& view, ThreadSnapshot& out) {
    out.threadState = view.address;
    out.threadId = view.threadId;
    out.nativeThreadId = view.nativeThreadId;
    out.frames.clear();
    for (const RawFrame& raw : rawFrames_) {
        out.frames.push_back({raw, raw.info, raw.info->lineAt(raw.byteOffset), {}});
    }
}

void PythonProcess::learnNativeIds(const std::vector<ThreadSnapshot>& threads) {
    if (nativeIds_.offset()) return;
    std::vector<uint64_t> pthreads;
    for (const ThreadSnapshot& thread : threads) pthreads.push_back(thread.threadId);
    nativeIds_.learn(memory_, pthreads, info_.threadIds(), info_.pid());
}

void PythonProcess::resolveThread(ThreadSnapshot& thread) {
    if (thread.nativeThreadId <= 0) {
        auto tid = nativeIds_.lookup(memory_, thread.threadId);
        thread.nativeThreadId = tid ? *tid : -1;
    }
    if (thread.nativeThreadId > 0)
        thread.state = info_.taskState(static_cast<pid_t>(thread.nativeThreadId));
}

void PythonProcess::addLocals(FrameSnapshot& frame, const RenderLimits& limits) {
    const CodeInfo* code = codes_.withLocals(frame.raw.code);
    if (!code || code->locals.empty()) return;
    std::vector<uint64_t> values(code->locals.size());
    if (!memory_.read(frame.raw.address + target_.layout.frame.localsplus, values.data(),
                      values.size() * 8)) {
        return;
    }
    for (size_t i = 0; i < values.size(); ++i) {
        uint64_t value = values[i];
        const LocalVariable& local = code->locals[i];
        if (value && local.kind != LocalKind::kPlain && objects_.kindOf(value) == TypeKind::kCell) {
            value = objects_.cellContents(value);
        }
        if (value == 0) continue;  // not assigned yet
        bool secret = looksSecret(strings_.get(local.name));
        frame.locals.push_back({local.name, local.argument,
                                secret ? std::string(kMasked) : objects_.render(value, limits)});
    }
}

bool PythonProcess::trySnapshot(const SnapshotOptions& options, Snapshot& out) {
    std::vector<std::vector<uint64_t>> perInterpreter;
    if (!threadStates(perInterpreter)) return false;
    out.threads.clear();
    uint64_t interp = 0;
    memory_.readPointer(target_.runtimeAddress + target_.layout.runtime.interpreters_head, interp);
    for (size_t index = 0; index < perInterpreter.size(); ++index) {
        uint64_t holder = gilHolder(memory_, target_.layout, target_.runtimeAddress, interp);
        for (uint64_t state : perInterpreter[index]) {
            ThreadSnapshot thread;
            thread.interpreter = static_cast<int>(index);
            if (!walkThread(state, interp, thread, out.tornWalks)) return false;
            thread.holdsGil = holder == state;
            out.threads.push_back(std::move(thread));
        }
        auto names = threadNames(objects_, interp);
        for (ThreadSnapshot& thread : out.threads) {
            auto name = names.find(thread.threadId);
            if (thread.interpreter == static_cast<int>(index) && name != names.end())
                thread.name = name->second;
        }
        memory_.readPointer(interp + target_.layout.interp.next, interp);
    }
    if (target_.layout.thread.native_thread_id == kNone) learnNativeIds(out.threads);
    for (ThreadSnapshot& thread : out.threads) {
        resolveThread(thread);
        if (!options.locals) continue;
        for (FrameSnapshot& frame : thread.frames) addLocals(frame, options.limits);
    }
    return true;
}

Snapshot PythonProcess::snapshot(const SnapshotOptions& options) {
    Snapshot snapshot;
    for (snapshot.attempts = 1; snapshot.attempts <= kMaxSnapshotAttempts; ++snapshot.attempts) {
        if (trySnapshot(options, snapshot)) return snapshot;
        if (!info_.alive()) {
            throw ProcessExitedError(
                fmt::format("process {} exited while it was being read", info_.pid()));
        }
    }
    throw InconsistentError(fmt::format(
        "process {} kept changing its thread list; no consistent snapshot after {} attempts (try "
        "--blocking to pause it for an exact one)",
        info_.pid(), kMaxSnapshotAttempts));
}

}  // namespace vigil
