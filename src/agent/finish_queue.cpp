#include "agent/finish_queue.h"

namespace vigil::agent {

bool FinishQueue::push(Finished&& item) {
    size_t size;
    {
        std::lock_guard lock(mutex_);
        if (items_.size() >= capacity_) {
            counters_.recordsDropped.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        items_.push_back(std::move(item));
        size = items_.size();
    }
    // Half full: the watchdog drains now rather than at its next tick.
    if (size == capacity_ / 2 + 1) wakeup_.post(kReportFinished);
    return true;
}

void FinishQueue::drain(std::vector<Finished>& out) {
    out.clear();
    std::lock_guard lock(mutex_);
    out.swap(items_);
}

}  // namespace vigil::agent
