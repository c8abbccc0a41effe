#include "core/pause.h"

#include <sys/ptrace.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/process.h"

namespace vigil {
namespace {

// Threads may start while we attach; a few passes catch them all.
constexpr int kMaxAttachPasses = 50;

}  // namespace

ProcessPause::ProcessPause(pid_t pid) : pid_(pid) {
    sigemptyset(&blocked_);
    for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&blocked_, signal);
    pthread_sigmask(SIG_BLOCK, &blocked_, &previousMask_);
    try {
        for (int pass = 0; pass < kMaxAttachPasses && attachNewTasks(); ++pass) {
        }
    } catch (...) {
        resumeAll();
        throw;
    }
}

ProcessPause::~ProcessPause() {
    resumeAll();
}

bool ProcessPause::attachNewTasks() {
    ProcessInfo info(pid_);
    bool attachedAny = false;
    for (pid_t tid : info.threadIds()) {
        if (std::find(attached_.begin(), attached_.end(), tid) != attached_.end()) continue;
        if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
            if (errno == ESRCH) continue;  // the thread ended meanwhile
            throw PermissionError(fmt::format(
                "cannot pause process {} (ptrace: {}): run vigil as the same user or as root, or "
                "grant CAP_SYS_PTRACE; check /proc/sys/kernel/yama/ptrace_scope",
                pid_, std::strerror(errno)));
        }
        attached_.push_back(tid);
        attachedAny = true;
        if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) continue;
        int status = 0;
        waitpid(tid, &status, __WALL);
    }
    return attachedAny;
}

void ProcessPause::resumeAll() {
    for (pid_t tid : attached_) ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    attached_.clear();
    pthread_sigmask(SIG_SETMASK, &previousMask_, nullptr);
    if (heldSignal_) {
        int signal = heldSignal_;
        heldSignal_ = 0;
        raise(signal);
    }
}

void ProcessPause::holdUntilSignal() {
    siginfo_t info;
    int signal = sigwaitinfo(&blocked_, &info);
    if (signal > 0) heldSignal_ = signal;
}

}  // namespace vigil
