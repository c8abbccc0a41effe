#include "agent/signals.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil::agent {
namespace {

// Handlers are process-wide, so is what they need. Indexed by signal number.
struct Installed {
    struct sigaction previous {};
    std::atomic<uint32_t> report{0};
};
Installed installed[NSIG];
std::atomic<Wakeup*> target{nullptr};

void chain(const struct sigaction& previous, int signal, siginfo_t* info, void* context) {
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) previous.sa_sigaction(signal, info, context);
        return;
    }
    // The default action of SIGUSR1/2 is to terminate: that is what the
    // agent's handler replaces, not something to chain to.
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN)
        previous.sa_handler(signal);
}

void onSignal(int signal, siginfo_t* info, void* context) {
    int savedErrno = errno;
    uint32_t report = installed[signal].report.load(std::memory_order_relaxed);
    if (Wakeup* wakeup = target.load(std::memory_order_acquire); wakeup && report)
        wakeup->post(report);
    chain(installed[signal].previous, signal, info, context);
    errno = savedErrno;
}

bool isOurs(const struct sigaction& action) {
    return (action.sa_flags & SA_SIGINFO) && action.sa_sigaction == onSignal;
}

}  // namespace

Wakeup::Wakeup() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) throw Error(ExitCode::kInternal, fmt::format("eventfd: {}", strerror(errno)));
}

Wakeup::~Wakeup() {
    ::close(fd_);
}

void Wakeup::post(uint32_t reports) {
    pending_.fetch_or(reports, std::memory_order_release);
    uint64_t one = 1;
    // Best effort: a full counter still wakes the reader.
    [[maybe_unused]] ssize_t written = ::write(fd_, &one, sizeof(one));
}

uint32_t Wakeup::wait(int timeoutMs) {
    pollfd entry{fd_, POLLIN, 0};
    if (::poll(&entry, 1, timeoutMs) > 0) {
        uint64_t count;
        [[maybe_unused]] ssize_t read = ::read(fd_, &count, sizeof(count));
    }
    return pending_.exchange(0, std::memory_order_acquire);
}

SignalHandlers::SignalHandlers(std::array<int, 3> signals, Wakeup& wakeup) : signals_(signals) {
    target.store(&wakeup, std::memory_order_release);
    install(signals[0], kReportRequests);
    install(signals[1], kReportStacks);
    install(signals[2], kReportReload);
}

void SignalHandlers::install(int signal, Report report) {
    if (signal <= 0 || signal >= NSIG) return;
    installed[signal].report.store(report, std::memory_order_relaxed);
    struct sigaction current {};
    sigaction(signal, nullptr, &current);
    // Already ours (a new agent after fork or after stop/start): keep the
    // handler we chain to, never chain to ourselves.
    if (isOurs(current)) return;
    struct sigaction action {};
    action.sa_sigaction = onSignal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(signal, &action, &installed[signal].previous);
}

SignalHandlers::~SignalHandlers() {
    target.store(nullptr, std::memory_order_release);
    for (int signal : signals_) {
        if (signal <= 0 || signal >= NSIG) continue;
        installed[signal].report.store(0, std::memory_order_relaxed);
        struct sigaction current {};
        sigaction(signal, nullptr, &current);
        if (isOurs(current)) sigaction(signal, &installed[signal].previous, nullptr);
    }
}

}  // namespace vigil::agent
