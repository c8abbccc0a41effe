// Ended requests on their way from the application's threads to the
// watchdog, which adds their profiles and writes them to the request log and
// the store. Bounded: when full, an ended request is dropped and counted,
// never waited for.
#pragma once
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "agent/signals.h"
#include "core/agent_state.h"
#include "core/request_record.h"

namespace vigil::agent {

struct Finished {
    FinishedRequest record;
    uint64_t serial = 0;    // its slot's serial: the key of its profile
    uint8_t held = 0;       // the rules' actions that hold (RuleSet::end)
    bool profiled = false;  // a profile rule picked it at its begin
};

class FinishQueue {
  public:
    FinishQueue(size_t capacity, StateCounters& counters, Wakeup& wakeup)
        : capacity_(capacity), counters_(counters), wakeup_(wakeup) {}

    // False when full (counted in the state file).
    bool push(Finished&& item);
    // Moves everything queued into out (cleared first).
    void drain(std::vector<Finished>& out);

  private:
    size_t capacity_;
    StateCounters& counters_;
    Wakeup& wakeup_;
    std::mutex mutex_;
    std::vector<Finished> items_;
};

}  // namespace vigil::agent
