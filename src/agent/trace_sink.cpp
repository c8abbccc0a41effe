// The in-memory sinks of the execution recorder: one that keeps events for
// the tests, one that only counts them for the benchmarks.
#include "agent/trace_sink.h"

#include <algorithm>
#include <array>

namespace vigil::agent {
namespace {

constexpr size_t kKinds = static_cast<size_t>(TraceEventKind::kPrecise) + 1;

size_t indexOf(TraceEventKind kind) {
    return static_cast<size_t>(kind);
}

}  // namespace

class CollectingSink::Thread final : public ThreadEvents {
  public:
    Thread(CollectingSink& sink, int64_t nativeId) : sink_(sink), nativeId_(nativeId) {}

    void write(std::span<const TraceEvent> events) override {
        size_t before = sink_.kept_.fetch_add(events.size(), std::memory_order_relaxed);
        size_t room = before < sink_.limit_ ? sink_.limit_ - before : 0;
        size_t kept = std::min(room, events.size());
        events_.insert(events_.end(), events.begin(), events.begin() + kept);
        if (kept < events.size())
            sink_.dropped_.fetch_add(events.size() - kept, std::memory_order_relaxed);
    }
    void close() override {}

    // Follows the stream's frames to name the code of each event.
    void replay(std::vector<Replayed>& out) const {
        std::vector<uint32_t> frames;
        uint64_t task = 0;
        for (const TraceEvent& event : events_) {
            if (event.kind == TraceEventKind::kCall)
                frames.push_back(static_cast<uint32_t>(event.value));
            if (event.kind == TraceEventKind::kTaskSwitch) task = event.value;
            uint32_t code = frames.empty() ? kNoCode : frames.back();
            out.push_back(
                {nativeId_, task, event.kind, code, event.line, event.timeNs, event.value});
            if (event.kind == TraceEventKind::kReturn && !frames.empty()) frames.pop_back();
        }
    }

    uint64_t count(TraceEventKind kind) const {
        uint64_t total = 0;
        for (const TraceEvent& event : events_) total += event.kind == kind;
        return total;
    }

  private:
    CollectingSink& sink_;
    int64_t nativeId_;
    std::vector<TraceEvent> events_;
};

CollectingSink::CollectingSink(size_t limit) : limit_(limit) {}
CollectingSink::~CollectingSink() = default;

uint32_t CollectingSink::defineCode(std::string_view file, std::string_view qualname,
                                    int firstLine) {
    std::lock_guard lock(mutex_);
    codes_.push_back({std::string(file), std::string(qualname), firstLine});
    return static_cast<uint32_t>(codes_.size() - 1);
}

ThreadEvents* CollectingSink::thread(int64_t nativeThreadId) {
    std::lock_guard lock(mutex_);
    threads_.push_back(std::make_unique<Thread>(*this, nativeThreadId));
    return threads_.back().get();
}

std::vector<CollectingSink::Replayed> CollectingSink::replay() const {
    std::lock_guard lock(mutex_);
    std::vector<Replayed> out;
    for (const auto& thread : threads_) thread->replay(out);
    return out;
}

uint64_t CollectingSink::count(TraceEventKind kind) const {
    std::lock_guard lock(mutex_);
    uint64_t total = 0;
    for (const auto& thread : threads_) total += thread->count(kind);
    return total;
}

class CountingSink::Thread final : public ThreadEvents {
  public:
    void write(std::span<const TraceEvent> events) override {
        for (const TraceEvent& event : events)
            counts_[indexOf(event.kind)].fetch_add(1, std::memory_order_relaxed);
    }
    void close() override {}
    uint64_t count(TraceEventKind kind) const {
        return counts_[indexOf(kind)].load(std::memory_order_relaxed);
    }

  private:
    std::array<std::atomic<uint64_t>, kKinds> counts_{};
};

CountingSink::CountingSink() = default;
CountingSink::~CountingSink() = default;

uint32_t CountingSink::defineCode(std::string_view, std::string_view, int) {
    return codes_.fetch_add(1, std::memory_order_relaxed);
}

ThreadEvents* CountingSink::thread(int64_t) {
    std::lock_guard lock(mutex_);
    threads_.push_back(std::make_unique<Thread>());
    return threads_.back().get();
}

uint64_t CountingSink::count(TraceEventKind kind) const {
    std::lock_guard lock(mutex_);
    uint64_t total = 0;
    for (const auto& thread : threads_) total += thread->count(kind);
    return total;
}

}  // namespace vigil::agent
