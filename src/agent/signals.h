// The agent's signal handlers: they only note which report was asked for
// and wake the watchdog thread (async-signal-safe), then chain to the handler
// that was there before, so an application's own SIGUSR1 handler still runs.
#pragma once
#include <signal.h>

#include <atomic>
#include <cstdint>

namespace vigil::agent {

enum Report : uint32_t {
    kReportRequests = 1,  // the table of running requests
    kReportStacks = 2,    // every thread's stack
    kReportStop = 4,
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

// Installs handlers for the two signals (0: none) that post to wakeup;
// restores the previous ones in its destructor if ours are still in place.
class SignalHandlers {
  public:
    SignalHandlers(int requestsSignal, int stacksSignal, Wakeup& wakeup);
    ~SignalHandlers();
    SignalHandlers(const SignalHandlers&) = delete;
    SignalHandlers& operator=(const SignalHandlers&) = delete;

  private:
    void install(int signal, Report report);
    int signals_[2] = {0, 0};
};

}  // namespace vigil::agent
