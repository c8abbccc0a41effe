#include "agent/agent.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "agent/watchdog.h"

namespace vigil::agent {

std::string defaultServiceName() {
    std::ifstream in("/proc/self/comm");
    std::string name;
    std::getline(in, name);
    return name.empty() ? "python" : name;
}

Agent::Agent(AgentConfig config)
    : config_(std::move(config)),
      pid_(getpid()),
      state_(StateFile::create(config_.stateDir, pid_, static_cast<uint32_t>(config_.maxRequests),
                               config_.service.empty() ? defaultServiceName() : config_.service)),
      log_(config_.logPath, !config_.logger.empty(), state_.counters()) {
    watchdog_ = std::make_unique<Watchdog>(config_, state_, log_, wakeup_);
    thread_ = std::thread([this] {
        // Signals go to the application's threads, as they did before the agent.
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        watchdog_->run();
    });
    signals_ =
        std::make_unique<SignalHandlers>(config_.requestsSignal, config_.stacksSignal, wakeup_);
    running_.store(true, std::memory_order_release);
}

Agent::~Agent() {
    stop();
}

void Agent::stop() {
    if (!running_.exchange(false, std::memory_order_acq_rel)) return;
    signals_.reset();
    wakeup_.post(kReportStop);
    if (thread_.joinable()) thread_.join();
    log_.close();
    state_.unlink();
}

}  // namespace vigil::agent
