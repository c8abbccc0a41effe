// Sampling one Python process: each round walks its threads and adds their
// stacks to a Profile. Allocation-free once warm: frames go into reused
// vectors, (code, instruction) pairs map to interned profile frames.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/profile.h"
#include "core/python_process.h"

namespace vigil {

struct SamplerOptions {
    bool idle = false;        // keep samples of idle threads too
    bool gilOnly = false;     // keep only the thread holding the GIL
    bool perThread = false;   // a root frame per thread
    bool perProcess = false;  // a root frame per process
    // Count running threads in RoundSummary even when idle ones are kept
    // (vigil top's header): with idle set and this not, a thread that does
    // not hold the GIL is not asked whether it runs (a read of its stat file).
    bool countRunning = false;
};

// What one round saw, for live views (vigil top).
struct RoundSummary {
    int threads = 0;
    int running = 0;
    bool gilHeld = false;
};

class ProcessSampler {
  public:
    ProcessSampler(PythonProcess& process, Profile& profile, const SamplerOptions& options);
    ~ProcessSampler();
    ProcessSampler(const ProcessSampler&) = delete;
    ProcessSampler& operator=(const ProcessSampler&) = delete;

    // One round at timeNs since the recording started. False once the process
    // is gone (it has then been accounted for and can be dropped).
    bool sample(int64_t timeNs, RoundSummary* summary = nullptr);

    pid_t pid() const { return process_.info().pid(); }
    // Why sampling stopped, if not because the process exited.
    const std::string& problem() const { return problem_; }
    PythonProcess& process() { return process_; }

  private:
    // The last sample of a thread: its frames (outermost first) and the
    // profile nodes they led to.
    struct StackMemo {
        struct Key {
            uint64_t code;
            int64_t offset;
            uint32_t generation;
            bool operator==(const Key&) const = default;
        };
        std::vector<Key> keys;
        std::vector<NodeId> nodes;
        size_t valid = 0;
        NodeId root = 0;
    };

    struct ThreadInfo {
        pid_t tid = -1;
        int statFd = -1;  // /proc/PID/task/TID/stat, kept open and re-read
        std::string name;
        FrameId root = 0;
        uint32_t track = 0;
        bool labelled = false;
        bool stale = false;
        uint64_t lastRound = 0;
        std::vector<NodeId> rootPath;  // process and thread root nodes, if any
        StackMemo memo;
    };

    struct CodeOffset {
        uint64_t code;
        int64_t offset;
        bool operator==(const CodeOffset&) const = default;
    };
    struct CodeOffsetHash {
        size_t operator()(const CodeOffset& key) const {
            return std::hash<uint64_t>()(key.code * 0x9E3779B97F4A7C15ull ^
                                         static_cast<uint64_t>(key.offset));
        }
    };

    // One interpreter's list head, successor and GIL, read in one go.
    struct InterpreterRead {
        uint64_t head = 0;  // _PyRuntime's first interpreter, to check ours still is
        uint64_t firstThread = 0;
        uint64_t next = 0;
        int32_t gilLocked = 0;
        uint64_t gilHolder = 0;
    };

    void readFirstInterpreter();
    // The reads of one interpreter's fields; returns how many to make (0: none possible).
    size_t interpreterRequests(uint64_t interp, bool first, InterpreterRead& out,
                               std::array<ReadRequest, 5>& requests);
    static constexpr uint64_t kCheckHeadEveryRounds = 64;
    // The GIL's two fields come first in those requests; then the thread
    // list's head and the next interpreter; then, on checking rounds, the
    // runtime's first interpreter.
    static constexpr size_t kGilRequests = 2;
    static constexpr size_t kThreadListRequests = 4;
    // Walks last round's first thread with the GIL read along; true if it
    // still heads the list (read.firstThread is then set).
    bool guessFirstThread(uint64_t interp, bool first, std::span<const ReadRequest> requests,
                          InterpreterRead& read, ThreadStateView& view, WalkStatus& status);
    // Samples every thread of one interpreter; false when its list is unreadable.
    bool sampleInterpreter(uint64_t interp, bool first, int64_t timeNs, RoundSummary& summary,
                           InterpreterRead& read);
    // Counts one walked thread; returns the next thread state of the list (0: end).
    uint64_t account(WalkStatus status, const ThreadStateView& view, uint64_t gilHolder,
                     int64_t timeNs, RoundSummary& summary);
    NodeId addToProfile(ThreadInfo& info);
    NodeId rootNode(ThreadInfo& info);
    void forgetGoneThreads();
    ThreadInfo& threadInfo(const ThreadStateView& view);
    void labelThread(ThreadInfo& info, uint64_t threadId);
    // Before 3.11: the kernel id from glibc's struct pthread (-1 until learnt).
    pid_t nativeThreadId(uint64_t threadId);
    std::vector<uint64_t> listedPthreads();
    bool isRunning(ThreadInfo& info);
    FrameId frameFor(const RawFrame& raw);

    PythonProcess& process_;
    Profile& profile_;
    SamplerOptions options_;
    FrameId processRoot_ = 0;
    std::vector<RawFrame> frames_;
    std::vector<NodeId> path_;
    std::unordered_map<uint64_t, ThreadInfo> threads_;  // by pthread id
    struct CachedFrame {
        uint32_t generation;  // of the code object it was made from
        FrameId frame;
    };
    std::unordered_map<CodeOffset, CachedFrame, CodeOffsetHash> frameIds_;
    std::unordered_map<uint64_t, std::string> threadNames_;  // from threading, refreshed on news
    NativeThreadIds nativeIds_;
    uint64_t nextLearnRound_ = 0;
    uint64_t round_ = 0;
    std::string problem_;
    uint64_t firstInterpreter_ = 0;
    uint64_t firstThread_ = 0;        // the head of the first interpreter's thread list last round
    uint64_t secondInterpreter_ = 0;  // the first interpreter's next, when last read
    std::unordered_map<uint64_t, GilLocation> gils_;  // by interpreter
};

}  // namespace vigil
