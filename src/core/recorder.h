// The sampling loop shared by `vigil record` and `vigil top`: a steady clock
// drives rounds at the requested rate; each round samples every attached
// process; children are followed as they appear and dropped as they go.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/discovery.h"
#include "core/profile.h"
#include "core/sampler.h"

namespace vigil {

struct RecorderOptions {
    double rateHz = 100;
    double durationSeconds = 0;  // 0: until stopped or every process is gone
    bool subprocesses = false;
    SamplerOptions sampler;
};

struct RoundInfo {
    int64_t elapsedNs = 0;
    size_t processes = 0;
    RoundSummary summary;  // summed over processes
};

class Recorder {
  public:
    Recorder(Profile& profile, const RecorderOptions& options, const Narrator& narrate);
    ~Recorder();

    // Starts sampling a running process; throws as PythonProcess does.
    void attach(pid_t pid);
    // Starts argv as a child and attaches once its interpreter is up.
    // Throws NotPythonError if it never shows a Python interpreter.
    pid_t launch(const std::vector<std::string>& argv);

    // Samples until the duration is over, stop becomes true, or no process is
    // left. onRound runs after every round.
    void run(const std::atomic<bool>& stop, const std::function<void(const RoundInfo&)>& onRound);

    // Stops the launched child (SIGTERM, then SIGKILL) and reaps it.
    void stopChild();
    pid_t child() const { return child_; }
    // The process attached or launched first.
    const PythonProcess& firstProcess() const { return *targets_.front().process; }
    const std::vector<std::string>& endedProcesses() const { return ended_; }

  private:
    struct Target {
        std::unique_ptr<PythonProcess> process;
        std::unique_ptr<ProcessSampler> sampler;
    };

    bool tryAttach(pid_t pid);
    void sampleRound(RoundInfo& round);
    void followChildren();

    Profile& profile_;
    RecorderOptions options_;
    Narrator narrate_;
    std::vector<Target> targets_;
    std::vector<pid_t> roots_;
    std::set<pid_t> seen_;  // processes tried, Python or not
    std::map<pid_t, int> attachTries_;
    static constexpr int kAttachTries = 20;  // polls, 100 ms apart
    std::vector<std::string> ended_;
    pid_t child_ = -1;
};

}  // namespace vigil
