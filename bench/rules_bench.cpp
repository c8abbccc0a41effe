// Cost of the rules per request: RuleSet::begin at the request's begin and
// RuleSet::end at its end, with 20 rules of the kinds a service would have
// (users, globs of every shape, attributes, ratios, minimum durations) plus
// the implicit one that keeps crashes, over a rotating set of requests.
// Baseline: the same loop over the same requests without the rules.
// Interleaved batches, medians (the goal of issue 5: at most 1 µs).
//
// Usage: vigil_bench_rules [BATCHES] [REQUESTS_PER_BATCH]
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"

#include "core/rules.h"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

// Stops the compiler from dropping a value it can see is unused.
template <typename T>
void keep(T value) {
    asm volatile("" : : "r"(value) : "memory");
}

RuleConfig rule(uint8_t actions, std::vector<std::string> requests = {},
                std::vector<std::string> users = {},
                std::vector<std::pair<std::string, std::string>> attributes = {}, double ratio = 1,
                double minDuration = 0) {
    RuleConfig config;
    config.requests = std::move(requests);
    config.users = std::move(users);
    config.attributes = std::move(attributes);
    config.ratio = ratio;
    config.minDuration = minDuration;
    config.actions = actions;
    return config;
}

std::vector<RuleConfig> twentyRules() {
    std::vector<std::string> staff;
    for (int i = 1; i <= 8; ++i) staff.push_back(fmt::format("staff{}", i));
    return {
        rule(kLog | kProfile, {}, {"admin", "root"}, {}, 1, 1.0),
        rule(kLog, {"sale.order.*", "GET /api/orders/*"}, {}, {{"db", "shop_*"}}, 0.01),
        rule(kProfile, {"report.*"}, {}, {}, 1, 2.0),
        rule(kLog, {"export.[a-z]*"}),
        rule(kLog, {"GET /api/v[0-9]/users/*"}, {}, {}, 0.1),
        rule(kLog, {"GET /health"}, {}, {}, 0.001),
        rule(kLog, {"*checkout*"}, {}, {}, 1, 0.5),
        rule(kLog, {"*.confirm"}, {"alice", "bob", "carol", "dave"}),
        rule(kLog, {}, {}, {{"region", "eu-?"}}, 0.05),
        rule(kLog | kException, {}, {"batch"}, {}, 1, 10.0),
        rule(kProfile, {"cron.*"}, {}, {}, 1, 60.0),
        rule(kProfile, {}, {}, {{"db", "shop_main"}, {"pid", "[0-9]*"}}, 0.02),
        rule(kLog, {"POST /api/*"}, {}, {}, 1, 0.3),
        rule(kLog, {"POST /graphql", "GET /graphql"}, {}, {{"op", "*Mutation*"}}),
        rule(kLog, {"admin.*"}, staff),
        rule(kLog | kProfile, {}, {}, {}, 1, 5.0),
        rule(kProfile, {}, {}, {}, 0.001),
        rule(kLog, {"stock.[!p]*"}, {}, {}, 1, 1.0),
        rule(kLog | kException, {"account.move.*"}, {}, {{"db", "shop_*"}}, 1, 0.2),
        rule(kLog, {"*webhook*"}, {"system"}),
    };
}

struct Request {
    std::string name, user;
    std::vector<std::pair<std::string, std::string>> attributes;
    std::vector<RuleSet::Attribute> views;  // of attributes, as the agent passes them
    uint64_t draw;
    int64_t durationNs;
    bool failed;
};

// Names, users and attributes drawn from lists, durations from 1 ms to 10 s
// (log-uniform), 1% failures.
std::vector<Request> requests(size_t count) {
    const std::vector<std::string> names = {
        "sale.order.confirm",      "sale.order.read",    "GET /api/orders/42",
        "GET /api/v2/users/7",     "GET /health",        "POST /api/cart/checkout",
        "report.sales.monthly",    "export.csv",         "stock.move.done",
        "stock.picking.validate",  "account.move.post",  "POST /graphql",
        "admin.users.list",        "cron.cleanup",       "POST /hooks/webhook/stripe",
        "res.partner.write",       "GET /static/app.js", "mail.message.create",
        "GET /api/v1/products/91", "website.page"};
    const std::vector<std::string> users = {"",      "",       "alice", "bob",   "staff3", "admin",
                                            "batch", "system", "erin",  "frank", "carol",  "guest"};
    const std::vector<std::string> dbs = {"shop_main", "shop_eu", "test", "analytics"};
    const std::vector<std::string> regions = {"eu-1", "eu-2", "us-1", "ap-3"};
    std::vector<Request> out(count);
    uint64_t state = 42;
    for (size_t i = 0; i < count; ++i) {
        Request& request = out[i];
        request.name = names[splitMix64(state) % names.size()];
        request.user = users[splitMix64(state) % users.size()];
        request.attributes = {{"db", dbs[splitMix64(state) % dbs.size()]},
                              {"pid", std::to_string(1000 + splitMix64(state) % 9000)},
                              {"region", regions[splitMix64(state) % regions.size()]}};
        if (request.name.find("graphql") != std::string::npos) {
            request.attributes.emplace_back("op", "CreateOrderMutation");
        }
        double uniform = static_cast<double>(splitMix64(state) >> 11) * 0x1p-53;
        request.durationNs = static_cast<int64_t>(std::pow(10.0, 6 + 4 * uniform));
        request.failed = splitMix64(state) % 100 == 0;
        request.draw = splitMix64(state);
    }
    for (Request& request : out) {
        for (const auto& [key, value] : request.attributes) request.views.emplace_back(key, value);
    }
    return out;
}

template <typename Work>
double nanosecondsPerRequest(const std::vector<Request>& inputs, int perBatch, Work&& work) {
    auto start = Clock::now();
    for (int i = 0; i < perBatch; ++i) work(inputs[static_cast<size_t>(i) % inputs.size()]);
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / perBatch;
}

}  // namespace

int main(int argc, char** argv) {
    int batches = argc > 1 ? std::atoi(argv[1]) : 51;
    int perBatch = argc > 2 ? std::atoi(argv[2]) : 200000;
    AgentConfig config;
    config.rules = twentyRules();
    validateAgentConfig(config, "the benchmark's rules");
    RuleSet rules = RuleSet::compile(config);
    std::vector<Request> inputs = requests(1024);
    std::vector<double> withRules, baselines;
    uint64_t kept = 0;
    for (int batch = 0; batch < batches; ++batch) {
        baselines.push_back(nanosecondsPerRequest(inputs, perBatch, [](const Request& r) {
            keep(r.name.size() ^ r.user.size() ^ r.views.size() ^ r.draw ^
                 static_cast<uint64_t>(r.durationNs) ^ r.failed);
        }));
        withRules.push_back(nanosecondsPerRequest(inputs, perBatch, [&](const Request& r) {
            RuleDecision decision = rules.begin(r.name, r.user, r.views, r.draw);
            uint8_t held = RuleSet::end(decision, r.durationNs, r.failed);
            kept += held != 0;
            keep(held);
        }));
    }
    double cost = bench::median(withRules), baseline = bench::median(baselines);
    fmt::print(
        "{{\"rules\": {}, \"begin_end_ns\": {:.1f}, \"baseline_ns\": {:.1f}, \"net_ns\": {:.1f}, "
        "\"kept_share\": {:.3f}, \"batches\": {}, \"requests_per_batch\": {}}}\n",
        config.rules.size(), cost, baseline, cost - baseline,
        static_cast<double>(kept) / (static_cast<double>(batches) * perBatch), batches, perBatch);
    return 0;
}
