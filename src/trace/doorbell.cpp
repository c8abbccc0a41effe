#include "trace/doorbell.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace vigil::trace {
namespace {

// The kernel waits on the counter's 32-bit word, which std::atomic<uint32_t>
// is.
uint32_t* word(std::atomic<uint32_t>& atomic) {
    return reinterpret_cast<uint32_t*>(&atomic);
}

}  // namespace

// Both sides store, then load the other's variable, all sequentially
// consistent: either the ringer sees the sleeper's flag and wakes it, or
// the sleeper sees the new count and does not sleep.
void Doorbell::ring() {
    rings_.fetch_add(1, std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst))
        ::syscall(SYS_futex, word(rings_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

void Doorbell::sleep(uint32_t seen, std::chrono::nanoseconds timeout) {
    sleeping_.store(true, std::memory_order_seq_cst);
    if (rings_.load(std::memory_order_seq_cst) == seen) {
        timespec relative{static_cast<time_t>(timeout.count() / 1'000'000'000),
                          static_cast<long>(timeout.count() % 1'000'000'000)};
        ::syscall(SYS_futex, word(rings_), FUTEX_WAIT_PRIVATE, seen, &relative, nullptr, 0);
    }
    sleeping_.store(false, std::memory_order_relaxed);
}

}  // namespace vigil::trace
