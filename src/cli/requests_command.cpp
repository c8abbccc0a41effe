// `vigil requests PID`: the requests a process is running now, read from
// its agent's shared-memory state file: no signal, no pause, no GIL.
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/agent_state.h"
#include "core/errors.h"

namespace vigil::cli {
namespace {

struct RequestsOptions {
    pid_t pid = 0;
    bool json = false;
    std::string stateDir = "/dev/shm";
};

std::string headerText(const StateFile& state) {
    const StateHeader& header = state.header();
    const StateCounters& counters = header.counters;
    return fmt::format(
        "process {}, service {}, agent since {}\nrequests: {} started, {} finished, {} not "
        "tracked (table full); {} long-request reports\n",
        header.pid, std::string(header.service, strnlen(header.service, sizeof(header.service))),
        isoTimeUtc(header.agentStartNs), counters.requestsStarted.load(),
        counters.requestsFinished.load(), counters.requestsUntracked.load(),
        counters.longRequestReports.load());
}

std::string attributesText(const RequestRecord& request) {
    std::string text;
    for (const auto& [key, value] : request.attributes)
        text += fmt::format("{}{}={}", text.empty() ? "" : " ", key, value);
    return text;
}

std::string asText(const StateFile& state, const std::vector<RequestRecord>& requests,
                   int64_t now) {
    std::string text = headerText(state);
    if (requests.empty()) return text + "no request running\n";
    text += fmt::format("{:<28} {:>9} {:>8}  {:<12} {:<30} {}\n", "TXN", "ELAPSED", "THREAD",
                        "USER", "NAME", "ATTRIBUTES");
    for (const RequestRecord& request : requests) {
        double elapsed = static_cast<double>(now - request.startMonotonicNs) / 1e9;
        text += fmt::format("{:<28} {:>8.2f}s {:>8}  {:<12} {:<30} {}\n", request.txn, elapsed,
                            request.nativeThreadId, request.user.empty() ? "-" : request.user,
                            request.name, attributesText(request));
    }
    return text;
}

nlohmann::json asJson(const StateFile& state, const std::vector<RequestRecord>& requests,
                      int64_t now) {
    const StateHeader& header = state.header();
    const StateCounters& counters = header.counters;
    nlohmann::json running = nlohmann::json::array();
    for (const RequestRecord& request : requests) running.push_back(requestAsJson(request, now));
    return {
        {"pid", header.pid},
        {"service", std::string(header.service, strnlen(header.service, sizeof(header.service)))},
        {"agent_started", isoTimeUtc(header.agentStartNs)},
        {"counters",
         {{"requests_started", counters.requestsStarted.load()},
          {"requests_finished", counters.requestsFinished.load()},
          {"requests_untracked", counters.requestsUntracked.load()},
          {"long_request_reports", counters.longRequestReports.load()},
          {"log_lines_written", counters.logLinesWritten.load()},
          {"log_lines_dropped", counters.logLinesDropped.load()},
          {"stack_walks_failed", counters.stackWalksFailed.load()},
          {"records_dropped", counters.recordsDropped.load()},
          {"request_log_lines", counters.requestLogLines.load()},
          {"reloads", counters.reloads.load()}}},
        {"requests", std::move(running)},
    };
}

int runRequests(const RequestsOptions& options) {
    if (::kill(options.pid, 0) != 0 && errno == ESRCH)
        throw NoSuchProcessError(
            fmt::format("no process with PID {}: check the PID (ps, pgrep)", options.pid));
    StateFile state = StateFile::open(options.stateDir, options.pid);
    std::vector<RequestRecord> requests = state.running();
    int64_t now = clockNs(CLOCK_MONOTONIC);
    std::string text =
        options.json ? asJson(state, requests, now)
                               .dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
                           "\n"
                     : asText(state, requests, now);
    writeStdout(text);
    return 0;
}

}  // namespace

Command addRequestsCommand(CLI::App& app, const Verbosity&) {
    auto options = std::make_shared<RequestsOptions>();
    CLI::App* requests =
        app.add_subcommand("requests", "Print the requests a process with the agent runs now");
    requests->add_option("pid", options->pid, "Process to inspect")->required();
    requests->add_flag("--json", options->json, "One JSON document");
    requests
        ->add_option("--state-dir", options->stateDir,
                     "Where the agent keeps its state file ([state] dir)")
        ->capture_default_str();
    return {requests, [options] { return runRequests(*options); }};
}

}  // namespace vigil::cli
