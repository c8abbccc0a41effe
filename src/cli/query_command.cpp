// `vigil query`: the requests of the agent's store, filtered and sorted, as
// a table or JSON; or per request name, counts and duration percentiles.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/agent_state.h"
#include "core/errors.h"
#include "core/request_record.h"
#include "core/store.h"

namespace vigil::cli {
namespace {

struct QueryOptions {
    std::string store = defaultStoreDir();
    std::string since;
    std::string name;
    std::string user;
    bool userGiven = false;
    bool errors = false;
    std::string sort = "recent";
    size_t limit = 20;
    bool json = false;
    bool aggregate = false;
};

// "90s", "30m", "1.5h", "2d", "1w" -> nanoseconds.
int64_t parseSince(const std::string& text) {
    static const std::pair<std::string_view, double> units[] = {
        {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 7 * 86400}};
    double number = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    std::string_view unit(end, text.data() + text.size() - end);
    for (const auto& [name, seconds] : units) {
        if (error == std::errc() && unit == name && number > 0 && std::isfinite(number))
            return static_cast<int64_t>(number * seconds * 1e9);
    }
    throw UsageError(fmt::format(
        "--since {}: expected a positive duration with its unit, such as 30s, 15m, 1h or 2d",
        text));
}

QueryFilter filterOf(const QueryOptions& options) {
    QueryFilter filter;
    if (!options.since.empty())
        filter.sinceNs = clockNs(CLOCK_REALTIME) - parseSince(options.since);
    filter.nameGlob = options.name;
    if (options.userGiven) filter.user = options.user;
    filter.errorsOnly = options.errors;
    filter.sort = options.sort == "slowest"  ? QuerySort::kSlowest
                  : options.sort == "oldest" ? QuerySort::kOldest
                                             : QuerySort::kRecent;
    filter.limit = options.limit;
    return filter;
}

std::string outcomeText(const FinishedRequest& request) {
    return request.httpStatus ? fmt::format("{} {}", request.outcome, request.httpStatus)
                              : request.outcome;
}

std::string requestsText(const std::vector<FinishedRequest>& requests) {
    if (requests.empty()) return "no stored request matches\n";
    std::string text = fmt::format("{:<28} {:<27} {:>12}  {:<30} {:<12} {}\n", "TXN", "START",
                                   "DURATION", "NAME", "USER", "OUTCOME");
    for (const FinishedRequest& request : requests) {
        text +=
            fmt::format("{:<28} {:<27} {:>12}  {:<30} {:<12} {}\n", request.txn,
                        isoTimeUtc(request.startNs), durationText(request.durationNs), request.name,
                        request.user.empty() ? "-" : request.user, outcomeText(request));
    }
    return text;
}

std::string statsText(const std::vector<NameStats>& stats) {
    if (stats.empty()) return "no stored request matches\n";
    std::string text = fmt::format("{:<30} {:>8} {:>8} {:>12} {:>12} {:>12}\n", "NAME", "COUNT",
                                   "ERRORS", "P50", "P95", "P99");
    for (const NameStats& entry : stats) {
        text += fmt::format("{:<30} {:>8} {:>8} {:>12} {:>12} {:>12}\n", entry.name, entry.count,
                            entry.errors, durationText(entry.p50Ns), durationText(entry.p95Ns),
                            durationText(entry.p99Ns));
    }
    return text;
}

// Seconds to the microsecond, as the request log writes durations.
double seconds(int64_t ns) {
    return std::round(static_cast<double>(ns) / 1e3) / 1e6;
}

nlohmann::json statsJson(const std::vector<NameStats>& stats) {
    nlohmann::json entries = nlohmann::json::array();
    for (const NameStats& entry : stats) {
        entries.push_back({{"name", entry.name},
                           {"count", entry.count},
                           {"errors", entry.errors},
                           {"p50", seconds(entry.p50Ns)},
                           {"p95", seconds(entry.p95Ns)},
                           {"p99", seconds(entry.p99Ns)}});
    }
    return entries;
}

nlohmann::json requestsJson(const std::vector<FinishedRequest>& requests) {
    nlohmann::json entries = nlohmann::json::array();
    for (const FinishedRequest& request : requests) entries.push_back(requestLogJson(request));
    return entries;
}

std::string jsonText(const nlohmann::json& document) {
    return document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

int runQuery(const QueryOptions& options) {
    QueryFilter filter = filterOf(options);
    StoreReader reader(options.store);
    std::string text;
    if (options.aggregate) {
        std::vector<NameStats> stats = reader.aggregate(filter);
        text = options.json ? jsonText(statsJson(stats)) : statsText(stats);
    } else {
        std::vector<FinishedRequest> requests = reader.query(filter);
        text = options.json ? jsonText(requestsJson(requests)) : requestsText(requests);
    }
    writeStdout(text);
    return 0;
}

}  // namespace

Command addQueryCommand(CLI::App& app, const Verbosity&) {
    auto options = std::make_shared<QueryOptions>();
    CLI::App* query = app.add_subcommand(
        "query", "List the requests of the agent's store, or their statistics per name");
    query
        ->add_option("--store", options->store,
                     "The agent's [store] dir (default: $VIGIL_STORE_DIR, else "
                     "~/.local/state/vigil)")
        ->capture_default_str();
    query->add_option("--since", options->since,
                      "Only requests started within this long: 30s, 15m, 1h, 2d, 1w");
    query->add_option("--name", options->name,
                      "Only request names matching this glob (* ? [a-z], case-sensitive)");
    CLI::Option* user =
        query->add_option("--user", options->user, "Only this user's requests ('' = no user)");
    query->add_flag("--errors", options->errors, "Only requests that ended with an error");
    query->add_option("--sort", options->sort, "Order of the list")
        ->check(CLI::IsMember({"slowest", "recent", "oldest"}))
        ->capture_default_str();
    query->add_option("--limit", options->limit, "At most this many rows (0: all)")
        ->capture_default_str();
    query->add_flag("--json", options->json, "One JSON array");
    query->add_flag("--aggregate", options->aggregate,
                    "Per request name: count, errors, p50/p95/p99 duration (most frequent first)");
    return {query, [options, user] {
                options->userGiven = user->count() > 0;
                return runQuery(*options);
            }};
}

}  // namespace vigil::cli
