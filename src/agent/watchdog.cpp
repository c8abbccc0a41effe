#include "agent/watchdog.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/errors.h"

namespace vigil::agent {

using nlohmann::json;

Watchdog::Watchdog(const AgentConfig& config, StateFile& state, LogSink& log, Wakeup& wakeup)
    : config_(config), state_(state), log_(log), wakeup_(wakeup), watches_(state.slotCount()) {}

int Watchdog::tickMs() const {
    if (!config_.longRequests) return -1;  // signals only
    double shortest = std::min(config_.threshold, config_.interval);
    return std::clamp(static_cast<int>(shortest * 100), 10, 250);
}

void Watchdog::run() {
    for (;;) {
        uint32_t reports = wakeup_.wait(tickMs());
        if (reports & kReportStop) return;
        if (reports & kReportRequests) reportRequests();
        if (reports & kReportStacks) reportStacks();
        if (config_.longRequests) checkLongRequests();
    }
}

void Watchdog::checkLongRequests() {
    int64_t now = clockNs(CLOCK_MONOTONIC);
    int64_t threshold = static_cast<int64_t>(config_.threshold * 1e9);
    for (uint32_t slot = 0; slot < state_.slotsTouched(); ++slot) {
        auto request = state_.read(slot);
        if (!request) continue;
        Watch& watch = watches_[slot];
        if (watch.serial != request->serial) watch = {request->serial, 0, 0};
        if (now - request->startMonotonicNs < threshold || now < watch.nextReportNs) continue;
        reportLongRequest(*request, watch, now);
    }
}

void Watchdog::reportLongRequest(const RequestRecord& request, Watch& watch, int64_t now) {
    json stack = requestStack(request);
    // The request may have ended while its stack was read: then the stack
    // is someone else's.
    auto still = state_.read(request.slot);
    if (!still || still->serial != request.serial) return;
    ++watch.reports;
    watch.nextReportNs = now + static_cast<int64_t>(config_.interval * 1e9);
    json line = event("long_request");
    line.update(requestAsJson(request, now));
    line["report"] = watch.reports;
    line["stack"] = std::move(stack);
    state_.counters().longRequestReports.fetch_add(1, std::memory_order_relaxed);
    emit(LogLevel::kWarning, line);
}

void Watchdog::reportRequests() {
    int64_t now = clockNs(CLOCK_MONOTONIC);
    json requests = json::array();
    for (const RequestRecord& request : state_.running())
        requests.push_back(requestAsJson(request, now));
    json line = event("running_requests");
    line["requests"] = std::move(requests);
    emit(LogLevel::kInfo, line);
}

void Watchdog::reportStacks() {
    json line = event("thread_stacks");
    PythonProcess* python = process();
    if (!python) return;
    try {
        Snapshot snapshot = python->snapshot({});
        json threads = json::array();
        for (const ThreadSnapshot& thread : snapshot.threads) {
            json frames = json::array();
            for (const FrameSnapshot& frame : thread.frames) frames.push_back(frameJson(frame));
            threads.push_back({{"thread_id", thread.threadId},
                               {"native_thread_id", thread.nativeThreadId},
                               {"name", thread.name},
                               {"holds_gil", thread.holdsGil},
                               {"consistent", thread.consistent},
                               {"stack", std::move(frames)}});
        }
        line["threads"] = std::move(threads);
    } catch (const Error& error) {
        line["error"] = error.what();
    }
    emit(LogLevel::kInfo, line);
}

PythonProcess* Watchdog::process() {
    if (process_ || processFailed_) return process_.get();
    try {
        process_ = std::make_unique<PythonProcess>(getpid(), RuntimeStrategy::kAuto,
                                                   [](std::string_view) {});
    } catch (const Error& error) {
        processFailed_ = true;
        json line = event("agent_error");
        line["error"] = fmt::format("cannot read this interpreter's stacks: {}", error.what());
        emit(LogLevel::kWarning, line);
    }
    return process_.get();
}

json Watchdog::requestStack(const RequestRecord& request) {
    PythonProcess* python = process();
    if (!python || request.threadState == 0) return nullptr;
    int torn = 0;
    try {
        if (python->walkThread(request.threadState, request.interpreter, thread_, torn) &&
            thread_.consistent) {
            json frames = json::array();
            for (const FrameSnapshot& frame : thread_.frames) frames.push_back(frameJson(frame));
            return frames;
        }
    } catch (const Error&) {
        // Reading our own memory only fails with an unreadable address: the
        // thread went away mid-walk. Counted below like any failed walk.
    }
    state_.counters().stackWalksFailed.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
}

json Watchdog::frameJson(const FrameSnapshot& frame) const {
    const StringTable& strings = process_->strings();
    return {{"function", strings.get(frame.code->qualname)},
            {"file", strings.get(frame.code->filename)},
            {"line", frame.line}};
}

json Watchdog::event(const char* name) const {
    return {
        {"time", isoTimeUtc(clockNs(CLOCK_REALTIME))},
        {"event", name},
        {"pid", getpid()},
        {"service", std::string(state_.header().service,
                                strnlen(state_.header().service, sizeof(StateHeader::service)))}};
}

void Watchdog::emit(LogLevel level, const json& line) {
    log_.write(level, line.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace vigil::agent
