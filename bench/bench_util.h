// Helpers shared by the C++ benchmarks.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace vigil::bench {

// The monotonic clock, in nanoseconds.
inline double wallNs() {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

inline double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

// xorshift64: the same numbers on every run, no allocation.
class Random {
  public:
    explicit Random(uint64_t seed) : state_(seed | 1) {}
    uint64_t next() {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 7;
        state_ ^= state_ << 17;
        return state_;
    }
    uint32_t below(uint32_t bound) { return static_cast<uint32_t>(next() % bound); }

  private:
    uint64_t state_;
};

}  // namespace vigil::bench
