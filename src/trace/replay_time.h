// Times in a replay: a trace counts CLOCK_MONOTONIC nanoseconds, people
// read and type wall-clock times in their time zone (TZ). TraceClock turns
// one into the other with the pair trace.json recorded at the start;
// parseJumpTime reads what `j` accepts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "trace/trace_meta.h"

namespace vigil {

class TraceClock {
  public:
    explicit TraceClock(const TraceMeta& meta)
        : monotonicNs_(meta.startMonotonicNs), realtimeNs_(meta.startRealtimeNs) {}
    int64_t wallNs(int64_t monotonicNs) const { return monotonicNs - monotonicNs_ + realtimeNs_; }
    int64_t monotonicNs(int64_t wallNs) const { return wallNs - realtimeNs_ + monotonicNs_; }

  private:
    int64_t monotonicNs_;
    int64_t realtimeNs_;
};

// The CLOCK_MONOTONIC time `text` names, with `currentNs` the time of the
// event replayed now:
//   12:00:16.55              a local time of day, on the day (of the days
//                            around currentNs) that puts it nearest to it
//   2025-03-14 12:00:16.55   a local date and time ('T' between them too)
//   +2s -300ms +1.5min +1h   relative to currentNs; units ns, us, ms, s,
//                            m or min, h
// Seconds and their fraction are optional in absolute times. Throws
// UsageError for anything else.
int64_t parseJumpTime(std::string_view text, const TraceClock& clock, int64_t currentNs);

// 2025-03-14T12:00:16.550123456+01:00: local time, to the nanosecond.
std::string isoLocalTime(int64_t wallNs);
// 12:00:16.550123: local time of day, to the microsecond.
std::string timeOfDay(int64_t wallNs);
// +1.234567s, -0.000300s: a signed distance in seconds, to the microsecond.
std::string secondsText(int64_t ns);

}  // namespace vigil
