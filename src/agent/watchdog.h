// The agent's native thread: it logs requests that run too long with their
// thread's Python stack, and answers the signals. It never takes the GIL: it
// reads the interpreter's structures the way `vigil dump` does, through
// process_vm_readv on its own process, a read that fails cleanly when a
// frame is freed under it. So it works while a request holds the GIL for
// ever (a regular expression backtracking, a C extension looping).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/request_profiler.h"
#include "core/python_process.h"

namespace vigil::agent {

class Watchdog {
  public:
    explicit Watchdog(Agent& agent);
    // Until a kReportStop is posted.
    void run();
    // How long the thread sleeps between looks at the table: a fraction of
    // the threshold, so a long request is logged at most 10% late; the
    // profile rate's period while a profiled request runs.
    int tickMs() const;

  private:
    // What the watchdog remembers of one slot's request.
    struct Watch {
        uint64_t serial = 0;
        int64_t nextReportNs = 0;
        int reports = 0;
    };

    void handle(uint32_t reports);
    void reloadConfig();
    void sampleProfiled();
    void finishRequests();
    void finish(Finished& finished);
    void checkLongRequests();
    void reportLongRequest(const RequestRecord& request, Watch& watch, int64_t nowNs);
    void reportRequests();
    void reportStacks();
    // The interpreter seen from inside, built at first need; null when it
    // could not be (said once in the log).
    PythonProcess* process();
    // Walks the thread running request into thread_; false (counted) when
    // its stack could not be read consistently.
    bool walkRequest(const RequestRecord& request);
    // The slot still holds that request: a stack just walked is its own.
    bool stillRunning(const RequestRecord& request) const;
    // A thread's stack, innermost first.
    nlohmann::json stackJson(const ThreadSnapshot& thread) const;
    nlohmann::json frameJson(const FrameSnapshot& frame) const;
    nlohmann::json event(const char* name) const;
    void emit(LogLevel level, const nlohmann::json& line);

    Agent& agent_;
    const AgentConfig& config_;
    StateFile& state_;
    LogSink& log_;
    Wakeup& wakeup_;
    std::unique_ptr<PythonProcess> process_;
    std::unique_ptr<RequestProfiler> profiler_;
    std::vector<Finished> finished_;  // reused between drains
    int64_t nextProfilerSweepNs_ = 0;
    bool processFailed_ = false;
    std::vector<Watch> watches_;
    ThreadSnapshot thread_;  // reused between walks
};

}  // namespace vigil::agent
