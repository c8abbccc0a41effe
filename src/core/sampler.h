// Sampling one Python process: each round walks its threads and adds their
// stacks to a Profile. Allocation-free once warm: frames go into reused
// vectors, (code, instruction) pairs map to interned profile frames.
#pragma once

#include <sys/types.h>

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
    PythonProcess& process() { return process_; }

  private:
    struct ThreadInfo {
        pid_t tid = -1;
        int statFd = -1;  // /proc/PID/task/TID/stat, kept open and re-read
        std::string name;
        FrameId root = 0;
        uint32_t track = 0;
        bool labelled = false;
        uint64_t lastRound = 0;
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

    bool sampleInterpreter(uint64_t interp, int64_t timeNs, RoundSummary& summary);
    // Returns the next thread state of the list, 0 at its end or when unreadable.
    uint64_t sampleThread(uint64_t threadState, uint64_t gilHolder, int64_t timeNs,
                          RoundSummary& summary);
    void forgetGoneThreads();
    ThreadInfo& threadInfo(const ThreadStateView& view);
    void labelThread(ThreadInfo& info, uint64_t threadId);
    bool isRunning(ThreadInfo& info);
    FrameId frameFor(const RawFrame& raw);

    PythonProcess& process_;
    Profile& profile_;
    SamplerOptions options_;
    FrameId processRoot_ = 0;
    std::vector<RawFrame> frames_;
    std::vector<FrameId> stack_;
    std::unordered_map<uint64_t, ThreadInfo> threads_;  // by pthread id
    struct CachedFrame {
        uint32_t generation;  // of the code object it was made from
        FrameId frame;
    };
    std::unordered_map<CodeOffset, CachedFrame, CodeOffsetHash> frameIds_;
    std::unordered_map<uint64_t, std::string> threadNames_;  // from threading, refreshed on news
    NativeThreadIds nativeIds_;
    uint64_t round_ = 0;
};

}  // namespace vigil
