// Wakes the trace writer's thread without a lock: ring() bumps a counter
// and makes a system call (FUTEX_WAKE) only when the thread sleeps, so an
// application thread that fills a chunk never waits for anything.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace vigil::trace {

class Doorbell {
  public:
    // Any thread, any time.
    void ring();
    // The sleeper (one thread): what to pass to sleep() — read it before
    // looking for work, so that a ring after the look is not missed.
    uint32_t rings() const { return rings_.load(std::memory_order_seq_cst); }
    // Returns on a ring since `seen` was read, or after `timeout`.
    void sleep(uint32_t seen, std::chrono::nanoseconds timeout);

  private:
    std::atomic<uint32_t> rings_{0};
    std::atomic<bool> sleeping_{false};
};

}  // namespace vigil::trace
