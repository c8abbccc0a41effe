#include "agent/agent.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

#include "agent/watchdog.h"
#include "core/errors.h"

namespace vigil::agent {

std::string defaultServiceName() {
    std::ifstream in("/proc/self/comm");
    std::string name;
    std::getline(in, name);
    return name.empty() ? "python" : name;
}

AgentConfig loadConfig(const ConfigSource& source) {
    AgentConfig config = loadAgentConfig(source.path);
    for (const auto& [key, value] : source.overrides)
        applyOverride(config, key, value, "vigil.start()");
    validateAgentConfig(config, "vigil.start()");
    return config;
}

Agent::Agent(AgentConfig config, ConfigSource source)
    : config_(std::move(config)),
      source_(std::move(source)),
      pid_(getpid()),
      state_(StateFile::create(config_.stateDir, pid_, static_cast<uint32_t>(config_.maxRequests),
                               config_.service.empty() ? defaultServiceName() : config_.service)),
      log_("agent log", config_.logPath, !config_.logger.empty(),
           {state_.counters().logLinesWritten, state_.counters().logLinesDropped}),
      requestLog_("request log", config_.requestLogPath, false,
                  {state_.counters().requestLogLines, state_.counters().logLinesDropped}),
      finished_(static_cast<size_t>(config_.storeQueue), state_.counters(), wakeup_) {
    allRules_.push_back(std::make_unique<RuleSet>(RuleSet::compile(config_)));
    rules_.store(allRules_.back().get(), std::memory_order_release);
    openStore();
    watchdog_ = std::make_unique<Watchdog>(*this);
    thread_ = std::thread([this] {
        // Signals go to the application's threads, as they did before the agent.
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        watchdog_->run();
    });
    signals_ = std::make_unique<SignalHandlers>(
        std::array{config_.requestsSignal, config_.stacksSignal, config_.reloadSignal}, wakeup_);
    running_.store(true, std::memory_order_release);
}

void Agent::openStore() {
    if (config_.storeDir.empty()) return;
    StoreLimits limits{static_cast<int64_t>(config_.storeMaxAge * 1e9), config_.storeMaxSize,
                       static_cast<size_t>(config_.storeQueue)};
    try {
        store_ = std::make_unique<StoreWriter>(
            config_.storeDir, limits,
            [](const std::string& line) { fmt::print(stderr, "vigil: {}\n", line); });
    } catch (const Error& error) {
        // The application goes on without a store; the reason is said once.
        fmt::print(stderr, "vigil: the agent keeps no store: {}\n", error.what());
    }
}

Agent::~Agent() {
    stop();
}

void Agent::reload(const AgentConfig& config) {
    {
        std::lock_guard lock(rulesMutex_);
        allRules_.push_back(std::make_unique<RuleSet>(RuleSet::compile(config)));
        rules_.store(allRules_.back().get(), std::memory_order_release);
    }
    state_.counters().reloads.fetch_add(1, std::memory_order_relaxed);
    wakeup_.post(kReportReopen);
}

void Agent::stop() {
    if (!running_.exchange(false, std::memory_order_acq_rel)) return;
    signals_.reset();
    wakeup_.post(kReportStop);
    if (thread_.joinable()) thread_.join();
    log_.close();
    if (store_) store_->flush();
    state_.unlink();
}

}  // namespace vigil::agent
