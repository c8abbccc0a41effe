// A live Python process seen from outside: discovery, readers, caches and
// the stack walker, put together; and a consistent snapshot of its threads.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/code_cache.h"
#include "core/discovery.h"
#include "core/memory.h"
#include "core/objects.h"
#include "core/process.h"
#include "core/stack_walker.h"
#include "core/strings.h"
#include "core/threads.h"

namespace vigil {

struct LocalValue {
    StringId name = 0;
    bool argument = false;
    std::string value;
};

struct FrameSnapshot {
    RawFrame raw;
    const CodeInfo* code = nullptr;
    int line = 0;
    std::vector<LocalValue> locals;
};

struct ThreadSnapshot {
    uint64_t threadState = 0;
    uint64_t threadId = 0;
    int64_t nativeThreadId = -1;
    std::string name;
    int interpreter = 0;  // index in the interpreter list, 0 for the main one
    bool holdsGil = false;
    TaskState state = TaskState::kUnknown;
    // false: no walk of the stack validated (it kept changing); frames empty.
    bool consistent = true;
    std::vector<FrameSnapshot> frames;
};

struct Snapshot {
    std::vector<ThreadSnapshot> threads;
    int attempts = 0;   // whole-snapshot attempts, 1 when nothing was torn
    int tornWalks = 0;  // per-thread walks thrown away as torn
    bool complete() const;
};

struct SnapshotOptions {
    bool locals = false;
    RenderLimits limits;
};

class PythonProcess {
  public:
    PythonProcess(pid_t pid, RuntimeStrategy strategy, const Narrator& narrate);

    const ProcessInfo& info() const { return info_; }
    const PythonTarget& target() const { return target_; }
    const PyLayout& layout() const { return target_.layout; }
    MemorySource& memory() { return memory_; }
    StringTable& strings() { return strings_; }
    CodeCache& codes() { return codes_; }
    StackWalker& walker() { return walker_; }
    ObjectReader& objects() { return objects_; }

    // Every thread of every interpreter with its stack. Torn walks are
    // retried; throws InconsistentError if the thread list itself never
    // holds still.
    Snapshot snapshot(const SnapshotOptions& options);

    // Thread-state addresses of each interpreter; false if the list is torn.
    bool threadStates(std::vector<std::vector<uint64_t>>& perInterpreter);

    // Walks one thread state of interpreter interp into out (its stack
    // only: no name, no locals); false if it no longer belongs to interp.
    // Counts torn walks in torn.
    bool walkThread(uint64_t threadState, uint64_t interp, ThreadSnapshot& out, int& torn);

    static constexpr int kMaxSnapshotAttempts = 20;
    static constexpr int kMaxThreadAttempts = 32;
    // Walks of a moving thread tried before its last validated one is kept.
    static constexpr int kMaxMovingAttempts = 8;

  private:
    void readMicroVersion();
    bool trySnapshot(const SnapshotOptions& options, Snapshot& out);
    void keepFrames(const ThreadStateView& view, ThreadSnapshot& out);
    void resolveThread(ThreadSnapshot& thread);
    void addLocals(FrameSnapshot& frame, const RenderLimits& limits);
    void learnNativeIds(const std::vector<ThreadSnapshot>& threads);

    ProcessInfo info_;
    ProcessMemory memory_;
    PythonTarget target_;
    StringTable strings_;
    ObjectReader objects_;
    CodeCache codes_;
    StackWalker walker_;
    NativeThreadIds nativeIds_;
    std::vector<RawFrame> rawFrames_;
};

}  // namespace vigil
