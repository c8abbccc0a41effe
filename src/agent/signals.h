// The agent's signal handlers: they only note which report was asked for
// and wake the watchdog thread (async-signal-safe), then chain to the handler
// that was there before, so an application's own SIGUSR1 handler still runs.
#pragma once
#include <signal.h>

#include <array>
#include <atomic>
#include <cstdint>

namespace vigil::agent {

enum Report : uint32_t {
    kReportRequests = 1,  // the table of running requests
    kReportStacks = 2,    // every thread's stack
    kReportStop = 4,
    kReportFinished = 8,  // ended requests are waiting
    kReportReload = 16,   // read the configuration again (SIGHUP)
    kReportReopen = 32,   // open the log files again (after a reload)
    kReportProfile = 64,  // a profiled request began
};

// Wakes a thread waiting on an eventfd and remembers what for.
class Wakeup {
  public:
    Wakeup();
    ~Wakeup();
    Wakeup(const Wakeup&) = delete;
    Wakeup& operator=(const Wakeup&) = delete;

    // Async-signal-safe.
    void post(uint32_t reports);
    // Waits until posted or timeoutMs passed; returns the reports posted.
    uint32_t wait(int timeoutMs);

  private:
    int fd_;
    std::atomic<uint32_t> pending_{0};
};

// Installs handlers that post to wakeup for the signals of the requests
// table, the stacks and a reload, in that order (0: none); restores the
// previous ones in its destructor if ours are still in place.
class SignalHandlers {
  public:
    SignalHandlers(std::array<int, 3> signals, Wakeup& wakeup);
    ~SignalHandlers();
    SignalHandlers(const SignalHandlers&) = delete;
    SignalHandlers& operator=(const SignalHandlers&) = delete;

  private:
    void install(int signal, Report report);
    std::array<int, 3> signals_;
};

}  // namespace vigil::agent
