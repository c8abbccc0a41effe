// Writes a known set of requests into a store, through the agent's
// StoreWriter, for tests/python/test_store_cli.py. Start times are relative
// to now, so that `vigil query --since` selects known subsets:
//
//   GET /items    items_001..items_100: item i took i ms and started
//                 i minutes - 30 s ago (60 within the last hour); user alice
//                 when i is odd, else bob; an error when i % 25 == 0.
//   POST /order   order_01..order_20: order j took j * 10 ms and started two
//                 days + j minutes ago; user carol; an error when j % 4 == 0.
//   GET /report   known_einstein_0001: 10 s ago, 2.5 s, an HTTP 500 error
//                 with a 200-sample profile and an exception with locals.
//   GET /health   plain_curie_0002: 5 s ago, 500 µs, no user, nothing kept.
//
// Usage: vigil_fill_store DIR
#include <chrono>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "core/store.h"

namespace {

using namespace vigil;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1000 * kMs;
constexpr int64_t kMinute = 60 * kSecond;

FinishedRequest request(std::string txn, std::string name, int64_t startNs, int64_t durationNs) {
    FinishedRequest request;
    request.txn = std::move(txn);
    request.name = std::move(name);
    request.service = "fill";
    request.pid = 4242;
    request.nativeThreadId = 4243;
    request.startNs = startNs;
    request.durationNs = durationNs;
    request.cpuNs = durationNs / 2;
    request.samples = 1;
    return request;
}

FinishedRequest item(int i, int64_t now) {
    FinishedRequest item = request(fmt::format("items_{:03d}", i), "GET /items",
                                   now - i * kMinute + 30 * kSecond, i * kMs);
    item.user = i % 2 ? "alice" : "bob";
    item.outcome = i % 25 == 0 ? "error" : "ok";
    item.httpStatus = i % 25 == 0 ? 500 : 200;
    return item;
}

FinishedRequest order(int j, int64_t now) {
    FinishedRequest order = request(fmt::format("order_{:02d}", j), "POST /order",
                                    now - 2 * 1440 * kMinute - j * kMinute, j * 10 * kMs);
    order.user = "carol";
    order.outcome = j % 4 == 0 ? "error" : "ok";
    return order;
}

FinishedRequest report(int64_t now) {
    FinishedRequest report =
        request("known_einstein_0001", "GET /report", now - 10 * kSecond, 2500 * kMs);
    report.user = "admin";
    report.cpuNs = 1200 * kMs;
    report.outcome = "error";
    report.httpStatus = 500;
    report.attributes = {{"db_pid", "1234"}, {"tenant", "acme"}};
    report.samples = 200;
    report.profileKept = true;
    report.profileFolded =
        "main (/srv/app.py:10);handle (/srv/app.py:20);query (/srv/db.py:5) 120\n"
        "main (/srv/app.py:10);handle (/srv/app.py:20);render (/srv/view.py:7) 60\n"
        "main (/srv/app.py:10);handle (/srv/app.py:20) 18\n"
        "main (/srv/app.py:10);log (/srv/log.py:3) 1\n"
        "main (/srv/app.py:10) 1\n";
    report.exception = ExceptionRecord{
        "ValueError",
        "bad quantity: -1",
        {{"main", "/srv/app.py", 10, {}},
         {"handle", "/srv/app.py", 21, {{"request", "<Request GET /report>"}}},
         {"parse", "/srv/forms.py", 42, {{"value", "'-1'"}, {"password", "'***'"}}}}};
    return report;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: vigil_fill_store DIR\n");
        return 2;
    }
    int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    StoreLimits limits;
    limits.maxAgeNs = 0;  // the orders are days old
    std::string problem;
    StoreWriter writer(argv[1], limits, [&](const std::string& line) { problem = line; });
    for (int i = 1; i <= 100; ++i) writer.submit(item(i, now));
    for (int j = 1; j <= 20; ++j) writer.submit(order(j, now));
    writer.submit(report(now));
    FinishedRequest health = request("plain_curie_0002", "GET /health", now - 5 * kSecond, kMs / 2);
    writer.submit(std::move(health));
    writer.flush();
    if (writer.written() != 122) {
        std::fprintf(stderr, "vigil_fill_store: wrote %llu of 122 requests: %s\n",
                     static_cast<unsigned long long>(writer.written()), problem.c_str());
        return 1;
    }
    return 0;
}
