#include "agent/request_profiler.h"

#include <algorithm>
#include <sstream>

#include "output/profile_writers.h"

namespace vigil::agent {

void RequestProfiler::sample(uint64_t serial, const ThreadSnapshot& thread) {
    auto [entry, added] = profiles_.try_emplace(serial, strings_);
    Profile& profile = entry->second;
    path_.clear();
    // Snapshots are innermost first; profiles want the outermost first.
    for (auto frame = thread.frames.rbegin(); frame != thread.frames.rend(); ++frame)
        path_.push_back(profile.frame(frame->code->qualname, frame->code->filename, frame->line));
    profile.add(path_);
}

RequestProfiler::Result RequestProfiler::take(uint64_t serial) {
    auto found = profiles_.find(serial);
    if (found == profiles_.end()) return {};
    std::ostringstream folded;
    writeFolded(found->second, folded);
    Result result{static_cast<uint32_t>(found->second.totalSamples()), folded.str()};
    profiles_.erase(found);
    return result;
}

void RequestProfiler::forgetAllBut(const std::vector<uint64_t>& running) {
    std::erase_if(profiles_, [&](const auto& entry) {
        return std::find(running.begin(), running.end(), entry.first) == running.end();
    });
}

}  // namespace vigil::agent
