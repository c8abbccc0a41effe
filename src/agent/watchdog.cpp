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

Watchdog::Watchdog(Agent& agent)
    : agent_(agent),
      config_(agent.config()),
      state_(agent.state()),
      log_(agent.log()),
      wakeup_(agent.wakeup()),
      watches_(agent.state().slotCount()) {
    // Finding the interpreter takes milliseconds: done by vigil.start(), not
    // at the first sample, whose request would lose its first samples.
    process();
}

int Watchdog::tickMs() const {
    if (agent_.profiled().load(std::memory_order_relaxed) > 0)
        return std::max(1, 1000 / config_.profileRate);
    // Ended requests wait at most this long for their log line.
    if (!config_.longRequests) return 250;
    double shortest = std::min(config_.threshold, config_.interval);
    return std::clamp(static_cast<int>(shortest * 100), 10, 250);
}

void Watchdog::run() {
    for (;;) {
        uint32_t reports = wakeup_.wait(tickMs());
        if (reports & kReportStop) {
            finishRequests();  // what ended before the stop still goes out
            return;
        }
        handle(reports);
        if (agent_.profiled().load(std::memory_order_relaxed) > 0) sampleProfiled();
        finishRequests();
        if (config_.longRequests) checkLongRequests();
    }
}

void Watchdog::handle(uint32_t reports) {
    if (reports & kReportReload) reloadConfig();
    if (reports & kReportReopen) {
        log_.reopen();
        agent_.requestLog().reopen();
    }
    if (reports & kReportRequests) reportRequests();
    if (reports & kReportStacks) reportStacks();
}

// SIGHUP: the rules again from the file and the environment, and the log
// files opened again (logrotate moved them). A wrong file keeps the rules
// in force and says why.
void Watchdog::reloadConfig() {
    try {
        agent_.reload(loadConfig(agent_.source()));
        emit(LogLevel::kInfo, event("config_reloaded"));
    } catch (const Error& error) {
        json line = event("agent_error");
        line["error"] = fmt::format("the configuration was not reloaded: {}", error.what());
        emit(LogLevel::kWarning, line);
    }
    log_.reopen();
    agent_.requestLog().reopen();
}

void Watchdog::sampleProfiled() {
    PythonProcess* python = process();
    if (!python) return;
    if (!profiler_) profiler_ = std::make_unique<RequestProfiler>(python->strings());
    std::vector<uint64_t> running;
    for (uint32_t slot = 0; slot < state_.slotsTouched(); ++slot) {
        auto request = state_.read(slot);
        if (!request || !(request->flags & RequestSlot::kProfiled)) continue;
        running.push_back(request->serial);
        if (walkRequest(*request) && stillRunning(*request))
            profiler_->sample(request->serial, thread_);
    }
    // Profiles of requests whose end never reached us (queue full).
    int64_t now = clockNs(CLOCK_MONOTONIC);
    if (now >= nextProfilerSweepNs_ && profiler_->size() > running.size() + 64) {
        finishRequests();
        profiler_->forgetAllBut(running);
        nextProfilerSweepNs_ = now + 10'000'000'000;
    }
}

void Watchdog::finishRequests() {
    agent_.finished().drain(finished_);
    for (Finished& finished : finished_) finish(finished);
}

void Watchdog::finish(Finished& finished) {
    FinishedRequest& record = finished.record;
    if (profiler_ && finished.profiled) {
        RequestProfiler::Result profile = profiler_->take(finished.serial);
        record.samples = profile.samples;
        if (finished.held & kProfile) {
            record.profileKept = true;
            record.profileFolded = std::move(profile.folded);
        }
    }
    if (finished.held & kLog)
        agent_.requestLog().write(
            LogLevel::kInfo,
            requestLogJson(record).dump(-1, ' ', false, json::error_handler_t::replace));
    if (finished.held && agent_.store()) agent_.store()->submit(std::move(record));
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
    json stack = walkRequest(request) ? stackJson(thread_) : json(nullptr);
    // The request may have ended while its stack was read: then the stack
    // is someone else's.
    if (!stillRunning(request)) return;
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
            threads.push_back({{"thread_id", thread.threadId},
                               {"native_thread_id", thread.nativeThreadId},
                               {"name", thread.name},
                               {"holds_gil", thread.holdsGil},
                               {"consistent", thread.consistent},
                               {"stack", stackJson(thread)}});
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

bool Watchdog::walkRequest(const RequestRecord& request) {
    PythonProcess* python = process();
    if (!python || request.threadState == 0) return false;
    int torn = 0;
    try {
        if (python->walkThread(request.threadState, request.interpreter, thread_, torn) &&
            thread_.consistent)
            return true;
    } catch (const Error&) {
        // Reading our own memory only fails with an unreadable address: the
        // thread went away mid-walk. Counted below like any failed walk.
    }
    state_.counters().stackWalksFailed.fetch_add(1, std::memory_order_relaxed);
    return false;
}

bool Watchdog::stillRunning(const RequestRecord& request) const {
    auto now = state_.read(request.slot);
    return now && now->serial == request.serial;
}

json Watchdog::stackJson(const ThreadSnapshot& thread) const {
    json frames = json::array();
    for (const FrameSnapshot& frame : thread.frames) frames.push_back(frameJson(frame));
    return frames;
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
