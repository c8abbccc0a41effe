// The agent inside the Python process: its live state, transaction ids,
// log, signal handlers and the watchdog thread that needs no GIL.
//
// Application threads only touch the state file (lock-free) and the id
// counter; everything that reads stacks, formats or writes happens on the
// watchdog thread.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <thread>

#include "agent/log_sink.h"
#include "agent/signals.h"
#include "core/agent_state.h"
#include "core/config.h"
#include "core/txn_id.h"

namespace vigil::agent {

class Watchdog;

class Agent {
  public:
    // Creates the state file, installs the signal handlers and starts the
    // watchdog. Throws Error.
    explicit Agent(AgentConfig config);
    // Never runs for an agent inherited through fork: its thread and locks
    // belong to the parent (see afterForkInChild in module.cpp).
    ~Agent();
    Agent(const Agent&) = delete;
    Agent& operator=(const Agent&) = delete;

    // Stops the watchdog, removes the state file and restores the signal
    // handlers. Requests still running keep a valid mapping to finish in.
    void stop();

    const AgentConfig& config() const { return config_; }
    StateFile& state() { return state_; }
    LogSink& log() { return log_; }
    pid_t pid() const { return pid_; }
    bool running() const { return running_.load(std::memory_order_acquire); }
    // The serial number of the next request, from 1.
    uint64_t nextSerial() { return serial_.fetch_add(1, std::memory_order_relaxed) + 1; }

  private:
    AgentConfig config_;
    pid_t pid_;
    StateFile state_;
    LogSink log_;
    Wakeup wakeup_;
    std::unique_ptr<SignalHandlers> signals_;
    std::unique_ptr<Watchdog> watchdog_;
    std::thread thread_;
    std::atomic<bool> running_{false};
    std::atomic<uint64_t> serial_{0};
};

// The program's name as the service name when none is configured.
std::string defaultServiceName();

}  // namespace vigil::agent
