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
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/finish_queue.h"
#include "agent/log_sink.h"
#include "agent/signals.h"
#include "core/agent_state.h"
#include "core/config.h"
#include "core/rules.h"
#include "core/store.h"
#include "core/txn_id.h"

namespace vigil::agent {

class Watchdog;

// Where a configuration comes from, kept to read it again on reload.
struct ConfigSource {
    std::string path;                                            // "" = none
    std::vector<std::pair<std::string, std::string>> overrides;  // of vigil.start(**overrides)
};
// Defaults, file, environment, overrides; checked. Throws ConfigError.
AgentConfig loadConfig(const ConfigSource& source);

class Agent {
  public:
    // Creates the state file, installs the signal handlers and starts the
    // watchdog. Throws Error.
    Agent(AgentConfig config, ConfigSource source);
    // Never runs for an agent inherited through fork: its thread and locks
    // belong to the parent (see afterForkInChild in module.cpp).
    ~Agent();
    Agent(const Agent&) = delete;
    Agent& operator=(const Agent&) = delete;

    // Stops the watchdog, removes the state file and restores the signal
    // handlers. Requests still running keep a valid mapping to finish in.
    void stop();

    const AgentConfig& config() const { return config_; }
    const ConfigSource& source() const { return source_; }
    StateFile& state() { return state_; }
    LogSink& log() { return log_; }
    LogSink& requestLog() { return requestLog_; }
    FinishQueue& finished() { return finished_; }
    StoreWriter* store() { return store_.get(); }
    Wakeup& wakeup() { return wakeup_; }
    // The rules of the moment: a reload swaps them; the old ones are kept
    // (requests that began under them may still read them).
    const RuleSet& rules() const { return *rules_.load(std::memory_order_acquire); }
    // Takes the rules of config, and has the logs opened again.
    void reload(const AgentConfig& config);
    // Requests running now that a profile rule picked: the watchdog samples
    // at the profile rate while there are any.
    std::atomic<int>& profiled() { return profiled_; }
    pid_t pid() const { return pid_; }
    bool running() const { return running_.load(std::memory_order_acquire); }
    // The serial number of the next request, from 1.
    uint64_t nextSerial() { return serial_.fetch_add(1, std::memory_order_relaxed) + 1; }

  private:
    void openStore();

    AgentConfig config_;
    ConfigSource source_;
    pid_t pid_;
    StateFile state_;
    LogSink log_;
    LogSink requestLog_;
    Wakeup wakeup_;
    FinishQueue finished_;
    std::unique_ptr<StoreWriter> store_;
    std::mutex rulesMutex_;
    std::vector<std::unique_ptr<RuleSet>> allRules_;
    std::atomic<const RuleSet*> rules_{nullptr};
    std::atomic<int> profiled_{0};
    std::unique_ptr<SignalHandlers> signals_;
    std::unique_ptr<Watchdog> watchdog_;
    std::thread thread_;
    std::atomic<bool> running_{false};
    std::atomic<uint64_t> serial_{0};
};

// The program's name as the service name when none is configured.
std::string defaultServiceName();

}  // namespace vigil::agent
