// Profiles of single requests: the watchdog samples the thread of every
// request a `profile` rule picked, and keeps one profile per request until
// the request's end says whether to keep it.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/profile.h"
#include "core/python_process.h"

namespace vigil::agent {

class RequestProfiler {
  public:
    // strings: the table the watchdog's walks intern names into.
    explicit RequestProfiler(StringTable& strings) : strings_(strings) {}

    // One sample of the request with this serial: its thread's stack.
    void sample(uint64_t serial, const ThreadSnapshot& thread);

    struct Result {
        uint32_t samples = 0;
        std::string folded;  // collapsed stacks, outermost first
    };
    // The request's profile, forgotten here.
    Result take(uint64_t serial);
    // Forgets the profiles of requests that ended without saying so (their
    // end was dropped from a full queue); keeps those in running.
    void forgetAllBut(const std::vector<uint64_t>& running);
    size_t size() const { return profiles_.size(); }

  private:
    StringTable& strings_;
    std::unordered_map<uint64_t, Profile> profiles_;
    std::vector<FrameId> path_;  // reused between samples
};

}  // namespace vigil::agent
