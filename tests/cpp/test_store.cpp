#include "core/store.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "temp_dir.h"

using vigil::testing::TempDir;
#include <sqlite3.h>

#include "core/errors.h"
#include "output/profile_writers.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSecond = 1'000'000'000;

int64_t nowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

FinishedRequest simpleRequest(int i, int64_t startNs, int64_t durationNs = 1'000'000) {
    FinishedRequest request;
    request.txn = fmt::format("txn_{:06d}", i);
    request.name = i % 2 ? "GET /odd" : "GET /even";
    request.user = i % 3 ? "alice" : "";
    request.service = "test";
    request.pid = 4242;
    request.nativeThreadId = 4243;
    request.startNs = startNs;
    request.durationNs = durationNs;
    request.cpuNs = durationNs / 2;
    request.attributes = {{"db_pid", std::to_string(1000 + i)}};
    request.samples = 3;
    return request;
}

FinishedRequest fullRequest() {
    FinishedRequest request = simpleRequest(1, nowNs() - 5 * kSecond);
    request.txn = "angry_einstein_7f3a";
    request.name = "POST /shop/örders/7";
    request.user = "admin";
    request.service = "gunicorn";
    request.durationNs = 2'011'000'000;
    request.cpuNs = -1;
    request.outcome = "error";
    request.httpStatus = 500;
    request.attributes = {{"zeta", "1"}, {"alpha", "two words"}, {"db_pid", "1234"}};
    request.samples = 201;
    request.profileKept = true;
    request.profileFolded = "main (app.py:1);view (app.py:20) 150\nmain (app.py:1) 51\n";
    request.exception = ExceptionRecord{
        "myapp.errors.Refused",
        "no stock for 'x'",
        {{"main", "/srv/app.py", 1, {}},
         {"view", "/srv/app.py", 20, {{"order", "<Order 7>"}, {"password", "***"}}}}};
    return request;
}

void expectSameFrames(const std::vector<FrameRecord>& a, const std::vector<FrameRecord>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].function, b[i].function);
        EXPECT_EQ(a[i].file, b[i].file);
        EXPECT_EQ(a[i].line, b[i].line);
        EXPECT_EQ(a[i].locals, b[i].locals);
    }
}

void expectSame(const FinishedRequest& a, const FinishedRequest& b) {
    EXPECT_EQ(a.txn, b.txn);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.user, b.user);
    EXPECT_EQ(a.service, b.service);
    EXPECT_EQ(a.pid, b.pid);
    EXPECT_EQ(a.nativeThreadId, b.nativeThreadId);
    EXPECT_EQ(a.startNs, b.startNs);
    EXPECT_EQ(a.durationNs, b.durationNs);
    EXPECT_EQ(a.cpuNs, b.cpuNs);
    EXPECT_EQ(a.outcome, b.outcome);
    EXPECT_EQ(a.httpStatus, b.httpStatus);
    EXPECT_EQ(a.attributes, b.attributes);
    EXPECT_EQ(a.samples, b.samples);
    EXPECT_EQ(a.profileKept, b.profileKept);
    EXPECT_EQ(a.profileFolded, b.profileFolded);
    ASSERT_EQ(a.exception.has_value(), b.exception.has_value());
    if (!a.exception) return;
    EXPECT_EQ(a.exception->type, b.exception->type);
    EXPECT_EQ(a.exception->message, b.exception->message);
    expectSameFrames(a.exception->stack, b.exception->stack);
}

StoreLimits testLimits() {
    StoreLimits limits;
    limits.retentionIntervalNs = 0;
    limits.reopenDelayNs = 0;
    return limits;
}

// Straight SQL on the store file, to see what the API does not show.
class RawStore {
  public:
    explicit RawStore(const std::string& dir) {
        sqlite3_open_v2(storePath(dir).c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr);
    }
    ~RawStore() { sqlite3_close(db_); }
    std::string text(const std::string& sql) {
        sqlite3_stmt* statement = nullptr;
        std::string result = "<error>";
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
            sqlite3_step(statement) == SQLITE_ROW) {
            const unsigned char* value = sqlite3_column_text(statement, 0);
            result = value ? reinterpret_cast<const char*>(value) : "";
        }
        sqlite3_finalize(statement);
        return result;
    }
    int64_t integer(const std::string& sql) { return std::stoll(text(sql)); }

  private:
    sqlite3* db_ = nullptr;
};

// Runs body in a forked child; its return value is the exit status.
int inChild(const std::function<int()>& body) {
    pid_t pid = fork();
    if (pid == 0) _exit(body());
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Store, WritesAndReadsBackEveryField) {
    TempDir dir{"vigil-store-test"};
    FinishedRequest full = fullRequest();
    FinishedRequest plain = simpleRequest(2, nowNs());
    {
        StoreWriter writer(dir.sub("store"), testLimits(), nullptr);
        EXPECT_TRUE(writer.submit(FinishedRequest(full)));
        EXPECT_TRUE(writer.submit(FinishedRequest(plain)));
        writer.flush();
        EXPECT_EQ(writer.written(), 2u);
        EXPECT_EQ(writer.dropped(), 0u);
    }
    StoreReader reader(dir.sub("store"));
    auto found = reader.find("angry_einstein_7f3a");
    ASSERT_TRUE(found);
    expectSame(*found, full);
    found = reader.find(plain.txn);
    ASSERT_TRUE(found);
    expectSame(*found, plain);
    EXPECT_FALSE(reader.find("no_such_txn_0000"));
}

TEST(Store, CreatesPrivateFilesInWalModeWithIncrementalVacuum) {
    TempDir dir{"vigil-store-test"};
    {
        StoreWriter writer(dir.sub("store"), testLimits(), nullptr);
        writer.submit(simpleRequest(1, nowNs()));
        writer.flush();
        struct stat info {};
        ASSERT_EQ(stat(dir.sub("store").c_str(), &info), 0);
        EXPECT_EQ(info.st_mode & 0777, 0700u);
        ASSERT_EQ(stat(storePath(dir.sub("store")).c_str(), &info), 0);
        EXPECT_EQ(info.st_mode & 0777, 0600u);
        ASSERT_EQ(stat((storePath(dir.sub("store")) + "-wal").c_str(), &info), 0);
        EXPECT_EQ(info.st_mode & 0777, 0600u);
    }
    RawStore raw(dir.sub("store"));
    EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.integer("PRAGMA auto_vacuum"), 2);  // incremental
    EXPECT_EQ(raw.integer("PRAGMA user_version"), kStoreSchemaVersion);
}

TEST(Store, QueriesFilterSortAndLimit) {
    TempDir dir{"vigil-store-test"};
    int64_t now = nowNs();
    {
        StoreWriter writer(dir.sub("store"), testLimits(), nullptr);
        for (int i = 0; i < 30; ++i) {
            FinishedRequest request = simpleRequest(i, now - i * 60 * kSecond, (i + 1) * 1'000'000);
            if (i % 10 == 0) request.outcome = "error";
            writer.submit(std::move(request));
        }
    }
    StoreReader reader(dir.sub("store"));
    QueryFilter filter;
    EXPECT_EQ(reader.query(filter).size(), 30u);
    filter.sort = QuerySort::kSlowest;
    filter.limit = 3;
    auto slowest = reader.query(filter);
    ASSERT_EQ(slowest.size(), 3u);
    EXPECT_EQ(slowest[0].txn, "txn_000029");
    EXPECT_EQ(slowest[2].txn, "txn_000027");
    filter = {};
    filter.sinceNs = now - 10 * 60 * kSecond - kSecond / 2;  // 0..10 minutes ago
    filter.nameGlob = "GET /e*";
    auto recent = reader.query(filter);
    ASSERT_EQ(recent.size(), 6u);  // 0 2 4 6 8 10
    EXPECT_EQ(recent.front().txn, "txn_000000");
    EXPECT_EQ(recent.back().txn, "txn_000010");
    filter = {};
    filter.errorsOnly = true;
    filter.user = "";
    EXPECT_EQ(reader.query(filter).size(), 1u);  // 0 (no user), 10 and 20 have one
    filter.user = "alice";
    EXPECT_EQ(reader.query(filter).size(), 2u);
}

TEST(Store, AggregatesExactNearestRankPercentiles) {
    TempDir dir{"vigil-store-test"};
    int64_t now = nowNs();
    {
        StoreWriter writer(dir.sub("store"), testLimits(), nullptr);
        for (int i = 1; i <= 100; ++i) {
            FinishedRequest request = simpleRequest(i, now, i * 1'000'000);
            request.name = "GET /items";
            request.outcome = i % 25 == 0 ? "error" : "ok";
            writer.submit(std::move(request));
        }
        for (int i = 1; i <= 20; ++i) {
            FinishedRequest request = simpleRequest(1000 + i, now, i * 10'000'000);
            request.name = "POST /order";
            writer.submit(std::move(request));
        }
    }
    StoreReader reader(dir.sub("store"));
    auto stats = reader.aggregate({});
    ASSERT_EQ(stats.size(), 2u);
    EXPECT_EQ(stats[0].name, "GET /items");
    EXPECT_EQ(stats[0].count, 100u);
    EXPECT_EQ(stats[0].errors, 4u);
    EXPECT_EQ(stats[0].p50Ns, 50'000'000);
    EXPECT_EQ(stats[0].p95Ns, 95'000'000);
    EXPECT_EQ(stats[0].p99Ns, 99'000'000);
    EXPECT_EQ(stats[1].name, "POST /order");
    EXPECT_EQ(stats[1].p50Ns, 100'000'000);
    EXPECT_EQ(stats[1].p95Ns, 190'000'000);
    EXPECT_EQ(stats[1].p99Ns, 200'000'000);
}

TEST(Store, RetentionDeletesRequestsOlderThanTheMaximumAge) {
    TempDir dir{"vigil-store-test"};
    StoreLimits limits = testLimits();
    limits.maxAgeNs = 3600 * kSecond;
    int64_t now = nowNs();
    {
        StoreWriter writer(dir.sub("store"), limits, nullptr);
        for (int i = 0; i < 50; ++i) {
            FinishedRequest request = fullRequest();
            request.txn = fmt::format("old_{}", i);
            request.startNs = now - 2 * 3600 * kSecond + i;
            writer.submit(std::move(request));
        }
        for (int i = 0; i < 20; ++i) writer.submit(simpleRequest(i, now - i * kSecond));
        writer.flush();
    }
    StoreReader reader(dir.sub("store"));
    EXPECT_EQ(reader.query({}).size(), 20u);
    EXPECT_FALSE(reader.find("old_0"));
    RawStore raw(dir.sub("store"));
    EXPECT_EQ(raw.integer("SELECT count(*) FROM profiles"), 0);  // went with their requests
    EXPECT_EQ(raw.integer("SELECT count(*) FROM exceptions"), 0);
}

TEST(Store, RetentionKeepsTheStoreUnderItsMaximumSize) {
    TempDir dir{"vigil-store-test"};
    StoreLimits limits = testLimits();
    limits.maxSizeBytes = 256 << 10;
    int64_t start = nowNs() - 3600 * kSecond;
    std::string profile;
    for (int line = 0; line < 10; ++line)
        profile +=
            fmt::format("main (app.py:1);handler_{0} (app.py:{0});query (db.py:9) 5\n", line);
    {
        StoreWriter writer(dir.sub("store"), limits, nullptr);
        for (int i = 0; i < 4000; ++i) {
            FinishedRequest request = simpleRequest(i, start + i * 1000);
            request.profileKept = true;
            request.profileFolded = profile;
            writer.submit(std::move(request));
            if (i % 500 == 499) writer.flush();
        }
        writer.flush();
    }
    RawStore raw(dir.sub("store"));
    int64_t used = (raw.integer("PRAGMA page_count") - raw.integer("PRAGMA freelist_count")) *
                   raw.integer("PRAGMA page_size");
    EXPECT_LE(used, limits.maxSizeBytes);
    EXPECT_LE(static_cast<int64_t>(fs::file_size(storePath(dir.sub("store")))),
              limits.maxSizeBytes + (64 << 10));
    int64_t kept = raw.integer("SELECT count(*) FROM requests");
    EXPECT_GT(kept, 50);
    EXPECT_LT(kept, 4000);
    // The newest are kept, the oldest went, and profiles with their requests.
    EXPECT_EQ(raw.text("SELECT max(txn) FROM requests"), "txn_003999");
    EXPECT_EQ(raw.integer("SELECT count(*) FROM requests WHERE txn < 'txn_001000'"), 0);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM profiles"), kept);
}

TEST(Store, FullQueueDropsAndCountsWithoutWaiting) {
    TempDir dir{"vigil-store-test"};
    StoreLimits limits = testLimits();
    limits.queueCapacity = 100;
    StoreWriter writer(dir.sub("store"), limits, nullptr);
    writer.pause();  // the thread takes nothing off the queue now
    auto slowest = std::chrono::nanoseconds(0);
    int refused = 0;
    for (int i = 0; i < 137; ++i) {
        auto start = std::chrono::steady_clock::now();
        refused += !writer.submit(simpleRequest(i, nowNs()));
        slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
    }
    EXPECT_EQ(refused, 37);
    EXPECT_EQ(writer.dropped(), 37u);
    EXPECT_LT(slowest, std::chrono::milliseconds(20));
    writer.resume();
    writer.flush();
    EXPECT_EQ(writer.written(), 100u);
    EXPECT_EQ(StoreReader(dir.sub("store")).query({}).size(), 100u);
}

TEST(Store, TwoProcessesShareOneStore) {
    TempDir dir{"vigil-store-test"};
    constexpr int kEach = 5000;
    std::vector<pid_t> children;
    for (int process = 0; process < 2; ++process) {
        pid_t pid = fork();
        if (pid == 0) {
            StoreWriter writer(dir.sub("store"), testLimits(), [](const std::string& line) {
                std::fprintf(stderr, "store: %s\n", line.c_str());
            });
            int64_t now = nowNs();
            for (int i = 0; i < kEach; ++i) {
                while (!writer.submit(simpleRequest(process * kEach + i, now + i))) usleep(1000);
            }
            writer.flush();
            _exit(writer.written() == kEach ? 0 : 1);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }
    StoreReader reader(dir.sub("store"));
    std::set<std::string> txns;
    for (const FinishedRequest& request : reader.query({})) txns.insert(request.txn);
    EXPECT_EQ(txns.size(), 2u * kEach);
}

TEST(Store, SigkilledWriterLeavesEveryFlushedRecord) {
    TempDir dir{"vigil-store-test"};
    constexpr int kFlushed = 3000;
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        StoreWriter writer(dir.sub("store"), testLimits(), nullptr);
        int64_t now = nowNs();
        for (int i = 0; i < kFlushed; ++i) writer.submit(simpleRequest(i, now));
        writer.flush();
        (void)!write(ready[1], "!", 1);
        // Killed in the middle of more writes.
        for (int i = kFlushed;; ++i) {
            FinishedRequest request = fullRequest();
            request.txn = fmt::format("txn_{:06d}", i);
            writer.submit(std::move(request));
            if (i % 200 == 0) usleep(1000);
        }
    }
    char byte = 0;
    ASSERT_EQ(read(ready[0], &byte, 1), 1);
    usleep(50'000);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    StoreReader reader(dir.sub("store"));
    for (int i = 0; i < kFlushed; ++i) ASSERT_TRUE(reader.find(fmt::format("txn_{:06d}", i))) << i;
    EXPECT_GE(reader.query({}).size(), static_cast<size_t>(kFlushed));
    EXPECT_EQ(RawStore(dir.sub("store")).text("PRAGMA integrity_check"), "ok");
    close(ready[0]);
    close(ready[1]);
}

TEST(Store, CorruptFileIsReportedOnceAndTheAppGoesOn) {
    TempDir dir{"vigil-store-test"};
    fs::create_directory(dir.sub("store"));
    std::ofstream(storePath(dir.sub("store"))) << std::string(8192, 'x') << "not a database";
    std::vector<std::string> reports;
    StoreWriter writer(dir.sub("store"), testLimits(),
                       [&](const std::string& line) { reports.push_back(line); });
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 10; ++i) EXPECT_TRUE(writer.submit(simpleRequest(i, nowNs())));
        writer.flush();
    }
    EXPECT_EQ(writer.dropped(), 30u);
    EXPECT_EQ(writer.written(), 0u);
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].find(storePath(dir.sub("store"))), std::string::npos) << reports[0];
    EXPECT_NE(reports[0].find("move the file away"), std::string::npos) << reports[0];
    try {
        StoreReader reader(dir.sub("store"));
        FAIL() << "a corrupt store was read";
    } catch (const BadFileError& error) {
        EXPECT_NE(std::string(error.what()).find("not a database"), std::string::npos)
            << error.what();
    }
}

TEST(Store, UnwritableDirectoryIsReportedOnceAndTheAppGoesOn) {
    TempDir dir{"vigil-store-test"};
    fs::create_directory(dir.sub("store"), dir.path());
    chmod(dir.path().c_str(), 0755);
    chmod(dir.sub("store").c_str(), 0555);
    int status = inChild([&] {
        // Root writes anywhere: the child gives that up first.
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return 10;
        std::vector<std::string> reports;
        {
            StoreWriter writer(dir.sub("store"), testLimits(),
                               [&](const std::string& line) { reports.push_back(line); });
            for (int round = 0; round < 3; ++round) {
                for (int i = 0; i < 10; ++i)
                    if (!writer.submit(simpleRequest(i, nowNs()))) return 11;
                writer.flush();
            }
            if (writer.dropped() != 30 || writer.written() != 0) return 12;
        }
        if (reports.size() != 1) return 13;
        if (reports[0].find("permissions") == std::string::npos) return 14;
        return 0;
    });
    EXPECT_EQ(status, 0);
}

TEST(Store, NewerSchemaIsRefused) {
    TempDir dir{"vigil-store-test"};
    {
        StoreWriter writer(dir.sub("store"), testLimits(), nullptr);
        writer.submit(simpleRequest(1, nowNs()));
    }
    RawStore(dir.sub("store")).text("PRAGMA user_version = 99");
    std::vector<std::string> reports;
    {
        StoreWriter writer(dir.sub("store"), testLimits(),
                           [&](const std::string& line) { reports.push_back(line); });
        writer.submit(simpleRequest(2, nowNs()));
        writer.flush();
        EXPECT_EQ(writer.dropped(), 1u);
    }
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].find("schema version 99 is newer"), std::string::npos) << reports[0];
    EXPECT_THROW(StoreReader reader(dir.sub("store")), BadFileError);
}

TEST(Store, MissingStoreIsABadFile) {
    TempDir dir{"vigil-store-test"};
    try {
        StoreReader reader(dir.sub("store"));
        FAIL() << "read a store that does not exist";
    } catch (const BadFileError& error) {
        EXPECT_NE(std::string(error.what()).find("no vigil store in " + dir.sub("store")),
                  std::string::npos)
            << error.what();
    }
}

TEST(Store, FoldedStacksLoadIntoAProfile) {
    StringTable strings;
    Profile profile(strings);
    addFoldedStacks(
        "main (app.py:1);view (app.py:20) 150\nmain (app.py:1) 51\nbad line\n"
        "<idle> 7\n",
        profile);
    EXPECT_EQ(profile.totalSamples(), 208u);
    std::ostringstream folded;
    writeFolded(profile, folded);
    EXPECT_EQ(folded.str(), "main (app.py:1) 51\nmain (app.py:1);view (app.py:20) 150\n<idle> 7\n");
}

TEST(Store, FoldedLabelsStayOnTheirLine) {
    // A thread may be named anything, and a name read from a code object
    // freed meanwhile was once a docstring: one label, one line.
    StringTable strings;
    Profile profile(strings);
    FrameId thread =
        profile.frame(strings.intern("thread a;b\nc\r"), strings.intern(""), 0, FrameKind::kThread);
    FrameId code = profile.frame(strings.intern("f"), strings.intern("x\ty.py"), 3);
    NodeId outer = profile.childOf(Profile::kRoot, thread);
    NodeId inner = profile.childOf(outer, code);
    std::vector<NodeId> path{outer, inner};
    profile.countPath(path, 2);
    std::ostringstream folded;
    writeFolded(profile, folded);
    EXPECT_EQ(folded.str(), "thread a,b c ;f (x y.py:3) 2\n");
}

}  // namespace
}  // namespace vigil
