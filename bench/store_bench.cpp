// Requests per second one process stores through StoreWriter: submit N
// records of realistic size, flush, divide by the wall time. Two kinds of
// runs, interleaved so that noise hits both alike: plain records, and one in
// ten carrying a ~2 KB profile. Each run writes into a new store.
//
// Usage: vigil_bench_store [REPETITIONS] [RECORDS] [DIR]
// Prints one JSON object: medians over repetitions.
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"

#include "core/store.h"

namespace {

using namespace vigil;
using Clock = std::chrono::steady_clock;

std::string profileOfAboutTwoKilobytes() {
    std::string folded;
    for (int line = 0; folded.size() < 2000; ++line) {
        folded += fmt::format(
            "main (/srv/app/wsgi.py:12);Flask.wsgi_app (/usr/lib/python3/flask/app.py:1478);"
            "view_{0} (/srv/app/views.py:{0});query (/srv/app/db.py:88) {1}\n",
            line, 1 + line % 7);
    }
    return folded;
}

// What a web request looks like once finished: a readable id, a route, a
// user, a few attributes.
FinishedRequest realisticRequest(uint64_t i, bool withProfile, const std::string& profile) {
    FinishedRequest request;
    request.txn = fmt::format("angry_einstein_{:08x}", i);
    request.name = fmt::format("GET /api/orders/{}", i % 50);
    request.user = fmt::format("user{}@example.com", i % 1000);
    request.service = "gunicorn";
    request.pid = 4251;
    request.nativeThreadId = 4260;
    request.startNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    request.durationNs = 1'000'000 + static_cast<int64_t>(i % 997) * 10'000;
    request.cpuNs = request.durationNs / 3;
    request.httpStatus = 200;
    request.attributes = {{"db_pid", std::to_string(1000 + i % 64)},
                          {"tenant", "acme"},
                          {"route", "/api/orders/<id>"}};
    request.samples = withProfile ? 25 : 0;
    request.profileKept = withProfile;
    if (withProfile) request.profileFolded = profile;
    return request;
}

// Records per second of one run.
double run(const std::string& parent, int records, bool profiles, const std::string& profile) {
    std::string dir = parent + "/run";
    std::filesystem::remove_all(dir);
    StoreLimits limits;
    limits.maxSizeBytes = 0;  // measure writing, not retention
    StoreWriter writer(dir, limits, [](const std::string& line) {
        std::fprintf(stderr, "vigil_bench_store: %s\n", line.c_str());
    });
    // Made before the clock starts: the figure is the store's, not fmt's.
    std::vector<FinishedRequest> requests;
    requests.reserve(records);
    for (int i = 0; i < records; ++i)
        requests.push_back(realisticRequest(i, profiles && i % 10 == 0, profile));
    auto start = Clock::now();
    for (FinishedRequest& request : requests) {
        // A full queue means the thread is behind: wait for it, so that the
        // figure is the sustained rate, not the queue's size.
        while (!writer.submit(std::move(request)))
            std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    writer.flush();
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (writer.written() != static_cast<uint64_t>(records))
        std::fprintf(stderr, "vigil_bench_store: wrote %llu of %d\n",
                     static_cast<unsigned long long>(writer.written()), records);
    return records / seconds;
}

}  // namespace

int main(int argc, char** argv) {
    using bench::median;
    int repetitions = argc > 1 ? std::atoi(argv[1]) : 7;
    int records = argc > 2 ? std::atoi(argv[2]) : 100'000;
    std::string parent = argc > 3 ? argv[3] : "";
    if (parent.empty()) {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "vigil-bench-store-XXXXXX").string();
        if (!mkdtemp(pattern.data())) return 1;
        parent = pattern;
    }
    std::string profile = profileOfAboutTwoKilobytes();
    std::vector<double> plain, withProfiles;
    for (int repetition = 0; repetition < repetitions; ++repetition) {
        plain.push_back(run(parent, records, false, profile));
        withProfiles.push_back(run(parent, records, true, profile));
    }
    if (argc <= 3) std::filesystem::remove_all(parent);
    fmt::print(
        "{{\"records_per_second\": {:.0f}, \"records_per_second_1_in_10_with_profile\": {:.0f}, "
        "\"profile_bytes\": {}, \"records\": {}, \"repetitions\": {}}}\n",
        median(plain), median(withProfiles), profile.size(), records, repetitions);
    return 0;
}
