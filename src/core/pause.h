// Pausing a whole process for an exactly consistent snapshot (--blocking).
//
// Every task is attached with PTRACE_SEIZE and stopped with PTRACE_INTERRUPT;
// the destructor detaches them all, which resumes them. While paused, the
// termination signals are blocked so that Ctrl-C or SIGTERM cannot leave the
// target stopped: they are delivered after the threads run again. If vigil is
// killed outright, the kernel detaches the tracees itself.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <vector>

namespace vigil {

class ProcessPause {
  public:
    // Throws PermissionError or NoSuchProcessError; resumes whatever it
    // already stopped before throwing.
    explicit ProcessPause(pid_t pid);
    ~ProcessPause();
    ProcessPause(const ProcessPause&) = delete;
    ProcessPause& operator=(const ProcessPause&) = delete;

    size_t threadCount() const { return attached_.size(); }

    // For tests: wait, still paused, until a termination signal arrives; it
    // is raised again once the process has been resumed.
    void holdUntilSignal();

  private:
    bool attachNewTasks();
    void resumeAll();

    pid_t pid_;
    std::vector<pid_t> attached_;
    sigset_t blocked_;
    sigset_t previousMask_;
    int heldSignal_ = 0;
};

}  // namespace vigil
