#include "core/store.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "core/agent_state.h"
#include "core/errors.h"

namespace vigil {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr int kBusyTimeoutMs = 200;
// Rows per write transaction. Fewer commits write each page they touch once
// instead of many times (500 rows a commit stored a third fewer requests a
// second); the write lock is still held only some 15 ms, far less than the
// other processes' busy timeout.
constexpr size_t kRowsPerTransaction = 2000;
constexpr int64_t kDeleteChunk = 2000;
constexpr auto kIdleWake = std::chrono::milliseconds(100);
// A folded profile laid on a timeline stops there (160 MB): a count gone
// wrong in a stored profile must not fill the memory.
constexpr size_t kMaxTimelineSamples = 10'000'000;
// Not a SQLite code: a store made by a newer vigil.
constexpr int kNewerSchema = -1;

// A failure of the store, with SQLite's primary result code (or kNewerSchema,
// or SQLITE_CANTOPEN for the directory and file we create ourselves).
class StoreFailure : public std::runtime_error {
  public:
    StoreFailure(int code, const std::string& message) : std::runtime_error(message), code(code) {}
    int code;
};

// --- SQLite, thinly wrapped: every failure throws StoreFailure. ---

class Statement {
  public:
    Statement(sqlite3* db, const char* sql) : db_(db) {
        int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
        if (rc != SQLITE_OK) throw StoreFailure(rc & 0xff, sqlite3_errmsg(db));
    }
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // The text must live until run() or the last step(): it is not copied.
    Statement& bind(int index, std::string_view text) {
        return check(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                                       SQLITE_STATIC));
    }
    Statement& bind(int index, int64_t value) {
        return check(sqlite3_bind_int64(stmt_, index, value));
    }
    Statement& bind(const char* name, std::string_view text) {
        return bind(sqlite3_bind_parameter_index(stmt_, name), text);
    }
    Statement& bind(const char* name, int64_t value) {
        return bind(sqlite3_bind_parameter_index(stmt_, name), value);
    }
    // True while there is a row to read.
    bool step() {
        int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        std::string message = sqlite3_errmsg(db_);
        sqlite3_reset(stmt_);
        throw StoreFailure(rc & 0xff, message);
    }
    // A statement that returns no row, made ready for the next run.
    void run() {
        step();
        sqlite3_reset(stmt_);
    }
    int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
    std::string text(int column) const {
        const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
        return data ? std::string(data, sqlite3_column_bytes(stmt_, column)) : std::string();
    }

  private:
    Statement& check(int rc) {
        if (rc != SQLITE_OK) throw StoreFailure(rc & 0xff, sqlite3_errmsg(db_));
        return *this;
    }
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

class Database {
  public:
    Database(const std::string& path, int flags) {
        int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
        if (rc != SQLITE_OK) {
            std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close_v2(db_);
            throw StoreFailure(rc & 0xff, message);
        }
        sqlite3_extended_result_codes(db_, 0);
        sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    }
    ~Database() { sqlite3_close_v2(db_); }
    Database(Database&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    void exec(const char* sql) {
        int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
        if (rc != SQLITE_OK) throw StoreFailure(rc & 0xff, sqlite3_errmsg(db_));
    }
    // The first column of the first row of a query (a PRAGMA, a count).
    int64_t integer(const char* sql) {
        Statement statement(db_, sql);
        return statement.step() ? statement.integer(0) : 0;
    }
    sqlite3* get() const { return db_; }

  private:
    sqlite3* db_ = nullptr;
};

constexpr const char* kSchema = R"sql(
CREATE TABLE requests (
  txn TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  user TEXT NOT NULL,            -- '' = none
  service TEXT NOT NULL,
  pid INTEGER NOT NULL,
  native_thread_id INTEGER NOT NULL,
  start_ns INTEGER NOT NULL,     -- CLOCK_REALTIME
  duration_ns INTEGER NOT NULL,
  cpu_ns INTEGER NOT NULL,       -- -1 = unknown
  outcome TEXT NOT NULL,         -- 'ok' or 'error'
  http_status INTEGER NOT NULL,  -- 0 = none
  attributes TEXT NOT NULL,      -- JSON object, in the order given
  samples INTEGER NOT NULL,
  profile_kept INTEGER NOT NULL
);
-- Inserts land at the end of these (time order): cheap. An index on the
-- duration alone would take each insert to a random page, and a commit
-- would write most of that index again (1M rows: 25k inserts/s instead of
-- 120k), so the slowest requests are sorted after filtering instead.
CREATE INDEX requests_start ON requests (start_ns);
CREATE INDEX requests_name ON requests (name, start_ns);
CREATE TABLE profiles (txn TEXT PRIMARY KEY NOT NULL, folded TEXT NOT NULL);
-- stack: JSON array, outermost first, of {function, file, line, locals: {name: repr}}
CREATE TABLE exceptions (txn TEXT PRIMARY KEY NOT NULL, type TEXT NOT NULL,
                         message TEXT NOT NULL, stack TEXT NOT NULL);
-- Retention deletes requests only; their profile and exception go with them.
CREATE TRIGGER requests_deleted AFTER DELETE ON requests BEGIN
  DELETE FROM profiles WHERE txn = old.txn;
  DELETE FROM exceptions WHERE txn = old.txn;
END;
PRAGMA user_version = 1;
)sql";

constexpr const char* kRequestColumns =
    "txn, name, user, service, pid, native_thread_id, start_ns, duration_ns, cpu_ns, outcome, "
    "http_status, attributes, samples, profile_kept";

// --- JSON columns ---

std::string dumpJson(const ordered_json& value) {
    // The application's strings may hold invalid UTF-8: replaced, never thrown.
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string pairsJson(const std::vector<std::pair<std::string, std::string>>& pairs) {
    ordered_json object = ordered_json::object();
    for (const auto& [key, value] : pairs) object[key] = value;
    return dumpJson(object);
}

std::vector<std::pair<std::string, std::string>> pairsFromJson(const ordered_json& object) {
    std::vector<std::pair<std::string, std::string>> pairs;
    if (!object.is_object()) return pairs;
    for (const auto& [key, value] : object.items())
        pairs.emplace_back(key, value.is_string() ? value.get<std::string>() : value.dump());
    return pairs;
}

std::string stackJson(const std::vector<FrameRecord>& stack) {
    ordered_json frames = ordered_json::array();
    for (const FrameRecord& frame : stack) {
        ordered_json locals = ordered_json::object();
        for (const auto& [name, repr] : frame.locals) locals[name] = repr;
        frames.push_back({{"function", frame.function},
                          {"file", frame.file},
                          {"line", frame.line},
                          {"locals", std::move(locals)}});
    }
    return dumpJson(frames);
}

FrameRecord frameFromJson(const ordered_json& frame) {
    FrameRecord record;
    record.function = frame.value("function", "");
    record.file = frame.value("file", "");
    record.line = frame.value("line", 0);
    if (frame.contains("locals")) record.locals = pairsFromJson(frame["locals"]);
    return record;
}

// What can be read of a stack: a frame with fields of the wrong type ends it.
std::vector<FrameRecord> stackFromJson(const std::string& text) {
    std::vector<FrameRecord> stack;
    ordered_json frames = ordered_json::parse(text, nullptr, false);
    if (!frames.is_array()) return stack;
    try {
        for (const ordered_json& frame : frames)
            if (frame.is_object()) stack.push_back(frameFromJson(frame));
    } catch (const nlohmann::json::exception&) {
        // Kept: the frames read before it.
    }
    return stack;
}

// --- Files ---

// Every missing component of dir, mode 0700: the store holds the
// application's data (user names, local variables).
void makeDirectories(const std::string& dir) {
    for (size_t end = dir.find('/', 1);; end = dir.find('/', end + 1)) {
        std::string part = dir.substr(0, end);
        if (!part.empty() && ::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
            throw StoreFailure(SQLITE_CANTOPEN, fmt::format("cannot create the directory {}: {}",
                                                            part, std::strerror(errno)));
        }
        if (end == std::string::npos) return;
    }
}

// Created here, 0600, before SQLite opens it: SQLite would make it 0644, and
// gives its -wal and -shm files the mode of the database file.
void createFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw StoreFailure(SQLITE_CANTOPEN,
                           fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    }
    ::close(fd);
}

std::string newerSchemaMessage(int64_t version) {
    return fmt::format("schema version {} is newer than this vigil's ({})", version,
                       kStoreSchemaVersion);
}

// Throws unless the open database is a vigil store this vigil can read.
void checkVersion(Database& db, int64_t version) {
    if (version > kStoreSchemaVersion)
        throw StoreFailure(kNewerSchema, newerSchemaMessage(version));
    if (version == kStoreSchemaVersion) return;
    bool empty = db.integer("SELECT count(*) FROM sqlite_master") == 0;
    throw StoreFailure(SQLITE_NOTADB, empty ? "an empty database, not a vigil store"
                                            : "a database, but not a vigil store");
}

// Switching to WAL fails at once, without the busy handler, while another
// process holds a lock (it does when two workers create the store
// together): tried again for as long as the busy timeout would have waited.
void enableWal(Database& db) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
    for (;;) {
        try {
            return db.exec("PRAGMA journal_mode = WAL");
        } catch (const StoreFailure& failure) {
            if (failure.code != SQLITE_BUSY || std::chrono::steady_clock::now() > deadline) throw;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

// The first process to open a new store creates its tables; the others see
// them once its transaction commits.
void createSchemaOnce(Database& db) {
    // Only honoured before the first table exists: then for good.
    db.exec("PRAGMA auto_vacuum = INCREMENTAL");
    enableWal(db);
    db.exec("BEGIN IMMEDIATE");
    try {
        int64_t version = db.integer("PRAGMA user_version");
        if (version == 0 && db.integer("SELECT count(*) FROM sqlite_master") == 0)
            db.exec(kSchema);
        else
            checkVersion(db, version);
        db.exec("COMMIT");
    } catch (...) {
        sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

// What the user should do about a failure, after what it was.
std::string advice(int code) {
    switch (code) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            return fmt::format(
                "another process held it locked longer than {} ms (a long transaction of another "
                "program?)",
                kBusyTimeoutMs);
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            return "move the file away and the agent starts a new store";
        case kNewerSchema:
            return "use the vigil that made it, or another [store] dir";
        case SQLITE_FULL:
            return "the disk is full: free some space or lower [store] max_size";
        default:
            return "check the directory's owner and permissions, or set another [store] dir";
    }
}

}  // namespace

// --- Public helpers ---

std::string storePath(const std::string& dir) {
    return dir + "/vigil.sqlite3";
}

std::string defaultStoreDir() {
    const char* fromEnvironment = std::getenv("VIGIL_STORE_DIR");
    if (fromEnvironment && *fromEnvironment) return fromEnvironment;
    const char* home = std::getenv("HOME");
    if (!home || !*home) {
        const passwd* entry = ::getpwuid(::getuid());
        home = entry ? entry->pw_dir : "/tmp";
    }
    return std::string(home) + "/.local/state/vigil";
}

std::string durationText(int64_t ns) {
    if (ns >= 1'000'000'000) return fmt::format("{:.3f} s", ns / 1e9);
    if (ns >= 1'000'000) return fmt::format("{:.3f} ms", ns / 1e6);
    return fmt::format("{:.0f} µs", ns / 1e3);
}

namespace {

FrameId frameOf(std::string_view label, Profile& profile) {
    StringTable& strings = profile.strings();
    size_t open = label.rfind(" (");
    if (label.ends_with(')') && open != std::string_view::npos) {
        std::string_view inside = label.substr(open + 2, label.size() - open - 3);
        size_t colon = inside.rfind(':');
        int line = 0;
        std::string_view digits = colon == std::string_view::npos ? "" : inside.substr(colon + 1);
        auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), line);
        if (!digits.empty() && error == std::errc() && end == digits.data() + digits.size()) {
            return profile.frame(strings.intern(label.substr(0, open)),
                                 strings.intern(inside.substr(0, colon)), line);
        }
    }
    return profile.frame(strings.intern(label), 0, 0, FrameKind::kThread);
}

// Appends one line's stack; the leaf node, or nullopt for a line that does
// not parse.
std::optional<std::pair<NodeId, uint64_t>> addFoldedLine(std::string_view line, Profile& profile,
                                                         std::vector<FrameId>& path) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    size_t space = line.rfind(' ');
    if (space == std::string_view::npos) return std::nullopt;
    uint64_t count = 0;
    std::string_view digits = line.substr(space + 1);
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
    if (error != std::errc() || end != digits.data() + digits.size() || count == 0)
        return std::nullopt;
    path.clear();
    std::string_view stack = line.substr(0, space);
    for (size_t start = 0; start <= stack.size();) {
        size_t semicolon = std::min(stack.find(';', start), stack.size());
        if (semicolon > start)
            path.push_back(frameOf(stack.substr(start, semicolon - start), profile));
        start = semicolon + 1;
    }
    if (path.empty()) return std::nullopt;
    return std::make_pair(profile.add(path, count), count);
}

}  // namespace

void addFoldedStacks(std::string_view folded, Profile& profile,
                     std::optional<FoldedTimeline> timeline) {
    std::vector<FrameId> path;
    int64_t timeNs = 0;
    while (!folded.empty()) {
        size_t newline = std::min(folded.find('\n'), folded.size());
        auto added = addFoldedLine(folded.substr(0, newline), profile, path);
        folded.remove_prefix(std::min(newline + 1, folded.size()));
        if (!added || !timeline) continue;
        for (uint64_t sample = 0;
             sample < added->second && profile.timeline().size() < kMaxTimelineSamples; ++sample) {
            profile.recordTime(added->first, timeNs, timeline->track);
            timeNs += timeline->periodNs;
        }
    }
}

// --- The writer's connection ---

struct StoreWriter::Connection {
    Database db;
    Statement begin{db.get(), "BEGIN IMMEDIATE"};
    Statement commit{db.get(), "COMMIT"};
    Statement insertRequest{db.get(),
                            "INSERT OR REPLACE INTO requests (txn, name, user, service, pid, "
                            "native_thread_id, start_ns, duration_ns, cpu_ns, outcome, "
                            "http_status, attributes, samples, profile_kept) VALUES "
                            "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"};
    Statement insertProfile{db.get(),
                            "INSERT OR REPLACE INTO profiles (txn, folded) VALUES (?1, ?2)"};
    Statement insertException{db.get(),
                              "INSERT OR REPLACE INTO exceptions (txn, type, message, stack) "
                              "VALUES (?1, ?2, ?3, ?4)"};
    Statement deleteOldest{db.get(),
                           "DELETE FROM requests WHERE rowid IN (SELECT rowid FROM requests "
                           "WHERE start_ns < ?1 ORDER BY start_ns LIMIT ?2)"};

    // The statements above are prepared against a database that already
    // holds the schema: this runs first.
    static Database openDatabase(const std::string& dir, const std::string& path);

    void write(const std::vector<FinishedRequest>& batch, size_t begin, size_t end);
    void insert(const FinishedRequest& request);
    int64_t deleteOlderThan(int64_t cutoffNs, int64_t limit);
    int64_t usedBytes();
    bool retain(const StoreLimits& limits);
};

Database StoreWriter::Connection::openDatabase(const std::string& dir, const std::string& path) {
    makeDirectories(dir);
    createFile(path);
    Database db(path, SQLITE_OPEN_READWRITE);
    int64_t version = db.integer("PRAGMA user_version");
    if (version == 0) {
        createSchemaOnce(db);
    } else {
        checkVersion(db, version);
        enableWal(db);
    }
    // NORMAL in WAL mode: a commit is safe from a crash of the process (the
    // kernel has the pages); only a power cut may lose the last ones.
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA journal_size_limit = 16777216");
    return db;
}

void StoreWriter::Connection::write(const std::vector<FinishedRequest>& batch, size_t first,
                                    size_t end) {
    begin.run();
    try {
        for (size_t i = first; i < end; ++i) insert(batch[i]);
        commit.run();
    } catch (...) {
        sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

void StoreWriter::Connection::insert(const FinishedRequest& request) {
    std::string attributes = pairsJson(request.attributes);
    insertRequest.bind(1, request.txn)
        .bind(2, request.name)
        .bind(3, request.user)
        .bind(4, request.service)
        .bind(5, int64_t{request.pid})
        .bind(6, int64_t{request.nativeThreadId})
        .bind(7, request.startNs)
        .bind(8, request.durationNs)
        .bind(9, request.cpuNs)
        .bind(10, request.outcome)
        .bind(11, int64_t{request.httpStatus})
        .bind(12, attributes)
        .bind(13, int64_t{request.samples})
        .bind(14, int64_t{request.profileKept})
        .run();
    if (request.profileKept)
        insertProfile.bind(1, request.txn).bind(2, request.profileFolded).run();
    if (!request.exception) return;
    const ExceptionRecord& exception = *request.exception;
    std::string stack = stackJson(exception.stack);
    insertException.bind(1, request.txn)
        .bind(2, exception.type)
        .bind(3, exception.message)
        .bind(4, stack)
        .run();
}

int64_t StoreWriter::Connection::deleteOlderThan(int64_t cutoffNs, int64_t limit) {
    begin.run();
    try {
        deleteOldest.bind(1, cutoffNs).bind(2, limit).run();
        int64_t deleted = sqlite3_changes(db.get());
        commit.run();
        return deleted;
    } catch (...) {
        sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

// Pages in use: what the file shrinks to once free pages are vacuumed.
int64_t StoreWriter::Connection::usedBytes() {
    return (db.integer("PRAGMA page_count") - db.integer("PRAGMA freelist_count")) *
           db.integer("PRAGMA page_size");
}

// Deletes by age, then the oldest rows while the store is bigger than its
// limit; in small transactions, so that other processes never wait long.
// True when something was deleted.
bool StoreWriter::Connection::retain(const StoreLimits& limits) {
    int64_t deleted = 0, chunk = 0;
    if (limits.maxAgeNs > 0) {
        int64_t cutoff = clockNs(CLOCK_REALTIME) - limits.maxAgeNs;
        do {
            chunk = deleteOlderThan(cutoff, kDeleteChunk);
            deleted += chunk;
        } while (chunk == kDeleteChunk);
    }
    if (limits.maxSizeBytes > 0) {
        // Down to 90% of the limit, so that the next batches do not each
        // cross it again.
        double target = 0.9 * static_cast<double>(limits.maxSizeBytes);
        int64_t rows = -1;
        for (int round = 0; round < 64; ++round) {
            int64_t used = usedBytes();
            if (used <= limits.maxSizeBytes && (deleted == 0 || used <= target)) break;
            if (rows < 0) rows = db.integer("SELECT count(*) FROM requests");
            if (rows <= 0) break;
            auto share = static_cast<int64_t>(std::ceil(rows * (used - target) / used));
            chunk = deleteOlderThan(INT64_MAX, std::clamp<int64_t>(share, 1, kDeleteChunk));
            if (chunk == 0) break;
            deleted += chunk;
            rows -= chunk;
        }
    }
    if (deleted == 0) return false;
    db.exec("PRAGMA incremental_vacuum");
    // The vacuum shrinks the file once its pages reach it from the WAL.
    sqlite3_wal_checkpoint_v2(db.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    return true;
}

// --- StoreWriter ---

StoreWriter::StoreWriter(std::string dir, StoreLimits limits,
                         std::function<void(const std::string&)> report)
    : dir_(std::move(dir)),
      path_(storePath(dir_)),
      limits_(limits),
      report_(std::move(report)),
      wakeAt_(std::clamp<size_t>(limits.queueCapacity / 4, 1, 1024)) {
    pending_.reserve(std::min<size_t>(limits_.queueCapacity, 4096));
    batch_.reserve(pending_.capacity());
    // The thread takes no signal: the application's handlers run elsewhere.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    thread_ = std::thread([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

StoreWriter::~StoreWriter() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        paused_ = false;
    }
    wake_.notify_all();
    thread_.join();
}

bool StoreWriter::submit(FinishedRequest&& request) {
    std::unique_lock lock(mutex_);
    if (pending_.size() >= limits_.queueCapacity) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    pending_.push_back(std::move(request));
    ++accepted_;
    // Two wake-ups per batch, not one per record: its first record ends the
    // idle sleep, a full batch ends the wait for more.
    bool wake = pending_.size() == 1 || pending_.size() == wakeAt_;
    lock.unlock();
    if (wake) wake_.notify_one();
    return true;
}

void StoreWriter::flush() {
    std::unique_lock lock(mutex_);
    uint64_t target = accepted_;
    flushTarget_ = std::max(flushTarget_, target);
    wake_.notify_one();
    done_.wait(lock, [&] { return processed_ >= target; });
}

void StoreWriter::pause() {
    std::unique_lock lock(mutex_);
    paused_ = true;
    wake_.notify_one();
    done_.wait(lock, [this] { return parked_ || stopping_; });
}

void StoreWriter::resume() {
    {
        std::lock_guard lock(mutex_);
        paused_ = false;
    }
    wake_.notify_one();
}

bool StoreWriter::mustWake() const {
    return stopping_ || paused_ || pending_.size() >= wakeAt_ || flushTarget_ > processed_;
}

void StoreWriter::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        // Idle, the thread sleeps until a record comes (no periodic wake-up:
        // the agent costs nothing while the application idles); then the
        // batch gets kIdleWake to fill.
        wake_.wait(lock, [this] { return mustWake() || !pending_.empty(); });
        wake_.wait_for(lock, kIdleWake, [this] { return mustWake(); });
        if (paused_ && !stopping_) {
            park(lock);
            continue;
        }
        batch_.swap(pending_);
        bool stop = stopping_;
        lock.unlock();
        size_t count = batch_.size();
        process(batch_);
        batch_.clear();
        lock.lock();
        processed_ += count;
        done_.notify_all();
        if (stop && pending_.empty()) return;
    }
}

void StoreWriter::park(std::unique_lock<std::mutex>& lock) {
    lock.unlock();
    db_.reset();  // reopened after resume(): a child forked meanwhile copies none
    lock.lock();
    parked_ = true;
    done_.notify_all();
    wake_.wait(lock, [this] { return !paused_ || stopping_; });
    parked_ = false;
}

void StoreWriter::process(std::vector<FinishedRequest>& batch) {
    int64_t now = clockNs(CLOCK_MONOTONIC);
    if (!batch.empty()) writeBatch(batch, now);
    retainIfDue(now);
}

void StoreWriter::writeBatch(std::vector<FinishedRequest>& batch, int64_t now) {
    size_t done = 0;
    try {
        if (ensureOpen(now)) {
            for (; done < batch.size(); done += kRowsPerTransaction) {
                size_t end = std::min(batch.size(), done + kRowsPerTransaction);
                db_->write(batch, done, end);
                written_.fetch_add(end - done, std::memory_order_relaxed);
            }
            wroteSinceRetention_ = true;
            if (failing_) recovered();
        }
    } catch (const StoreFailure& failure) {
        failed(failure.code, failure.what(), now);
    } catch (const std::exception& error) {
        // Never out of this thread: it would end the application.
        failed(SQLITE_ERROR, error.what(), now);
    }
    done = std::min(done, batch.size());
    dropped_.fetch_add(batch.size() - done, std::memory_order_relaxed);
    droppedWhileFailing_ += batch.size() - done;
}

bool StoreWriter::ensureOpen(int64_t now) {
    if (db_) return true;
    if (now < retryAtNs_) return false;
    db_ = std::unique_ptr<Connection>(new Connection{Connection::openDatabase(dir_, path_)});
    return true;
}

void StoreWriter::retainIfDue(int64_t now) {
    if (!db_ || !wroteSinceRetention_) return;
    if (lastRetentionNs_ != 0 && now - lastRetentionNs_ < limits_.retentionIntervalNs) return;
    lastRetentionNs_ = now;
    wroteSinceRetention_ = false;
    try {
        db_->retain(limits_);
    } catch (const StoreFailure& failure) {
        if (failure.code == SQLITE_BUSY || failure.code == SQLITE_LOCKED) {
            wroteSinceRetention_ = true;  // another process is busy: next time
            return;
        }
        failed(failure.code, failure.what(), now);
    } catch (const std::exception& error) {
        failed(SQLITE_ERROR, error.what(), now);
    }
}

void StoreWriter::failed(int code, const std::string& what, int64_t now) {
    bool busy = code == SQLITE_BUSY || code == SQLITE_LOCKED;
    // A lock passes: try again with the next batch. Anything else may need
    // the user: reopen from scratch, but not at every batch.
    if (!busy) db_.reset();
    retryAtNs_ = busy ? now : now + limits_.reopenDelayNs;
    if (failing_) return;
    failing_ = true;
    droppedWhileFailing_ = 0;
    std::string message = fmt::format(
        "cannot write the store {}: {}; {}; requests are dropped and counted until "
        "it works again",
        path_, what, advice(code));
    if (report_) report_(message);
}

void StoreWriter::recovered() {
    failing_ = false;
    if (report_) {
        report_(fmt::format("the store {} works again ({} requests were dropped)", path_,
                            droppedWhileFailing_));
    }
}

// --- StoreReader ---

struct StoreReader::Connection {
    Database db;
};

namespace {

FinishedRequest requestFromRow(const Statement& row) {
    FinishedRequest request;
    request.txn = row.text(0);
    request.name = row.text(1);
    request.user = row.text(2);
    request.service = row.text(3);
    request.pid = static_cast<int32_t>(row.integer(4));
    request.nativeThreadId = static_cast<int32_t>(row.integer(5));
    request.startNs = row.integer(6);
    request.durationNs = row.integer(7);
    request.cpuNs = row.integer(8);
    request.outcome = row.text(9);
    request.httpStatus = static_cast<int>(row.integer(10));
    request.attributes = pairsFromJson(ordered_json::parse(row.text(11), nullptr, false));
    request.samples = static_cast<uint32_t>(row.integer(12));
    request.profileKept = row.integer(13) != 0;
    return request;
}

std::string whereClause(const QueryFilter& filter) {
    std::string sql = " WHERE 1";
    if (filter.sinceNs) sql += " AND start_ns >= :since";
    if (!filter.nameGlob.empty()) sql += " AND name GLOB :name";
    if (filter.user) sql += " AND user = :user";
    if (filter.errorsOnly) sql += " AND outcome = 'error'";
    return sql;
}

void bindFilter(Statement& statement, const QueryFilter& filter) {
    if (filter.sinceNs) statement.bind(":since", *filter.sinceNs);
    if (!filter.nameGlob.empty()) statement.bind(":name", filter.nameGlob);
    if (filter.user) statement.bind(":user", *filter.user);
}

const char* orderClause(QuerySort sort) {
    switch (sort) {
        case QuerySort::kSlowest:
            return " ORDER BY duration_ns DESC, start_ns DESC";
        case QuerySort::kOldest:
            return " ORDER BY start_ns ASC";
        case QuerySort::kRecent:
            break;
    }
    return " ORDER BY start_ns DESC";
}

// Nearest rank of sorted durations.
int64_t percentile(const std::vector<int64_t>& sorted, int percent) {
    size_t rank = (sorted.size() * percent + 99) / 100;
    return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

NameStats statsOf(std::string name, std::vector<int64_t>& durations, uint64_t errors) {
    std::sort(durations.begin(), durations.end());
    return {std::move(name),           durations.size(),          errors,
            percentile(durations, 50), percentile(durations, 95), percentile(durations, 99)};
}

}  // namespace

StoreReader::StoreReader(const std::string& dir) : path_(storePath(dir)) {
    struct stat info {};
    if (::stat(path_.c_str(), &info) != 0) {
        throw BadFileError(fmt::format(
            "no vigil store in {}: {}: {} (give --store DIR or set VIGIL_STORE_DIR to the "
            "agent's [store] dir)",
            dir, path_, std::strerror(errno)));
    }
    try {
        db_ = std::unique_ptr<Connection>(new Connection{Database(path_, SQLITE_OPEN_READONLY)});
        checkVersion(db_->db, db_->db.integer("PRAGMA user_version"));
    } catch (const StoreFailure& failure) {
        throw BadFileError(
            fmt::format("cannot read the store {}: {}; {}", path_, failure.what(),
                        failure.code == kNewerSchema ? "use a newer vigil" : advice(failure.code)));
    }
}

StoreReader::~StoreReader() = default;

namespace {

// Runs a read, turning a failure of SQLite into the one line the CLI prints.
template <typename Read>
auto guarded(const std::string& path, Read&& read) {
    try {
        return read();
    } catch (const StoreFailure& failure) {
        throw BadFileError(fmt::format("cannot read the store {}: {}; {}", path, failure.what(),
                                       advice(failure.code)));
    }
}

}  // namespace

std::optional<FinishedRequest> StoreReader::find(const std::string& txn) {
    return guarded(path_, [&]() -> std::optional<FinishedRequest> {
        sqlite3* db = db_->db.get();
        Statement row(
            db, fmt::format("SELECT {} FROM requests WHERE txn = ?1", kRequestColumns).c_str());
        if (!row.bind(1, txn).step()) return std::nullopt;
        FinishedRequest request = requestFromRow(row);
        Statement profile(db, "SELECT folded FROM profiles WHERE txn = ?1");
        if (profile.bind(1, txn).step()) request.profileFolded = profile.text(0);
        Statement exception(db, "SELECT type, message, stack FROM exceptions WHERE txn = ?1");
        if (exception.bind(1, txn).step()) {
            request.exception = ExceptionRecord{exception.text(0), exception.text(1),
                                                stackFromJson(exception.text(2))};
        }
        return request;
    });
}

std::vector<FinishedRequest> StoreReader::query(const QueryFilter& filter) {
    std::string sql = fmt::format("SELECT {} FROM requests{}{}", kRequestColumns,
                                  whereClause(filter), orderClause(filter.sort));
    if (filter.limit > 0) sql += fmt::format(" LIMIT {}", filter.limit);
    return guarded(path_, [&] {
        Statement rows(db_->db.get(), sql.c_str());
        bindFilter(rows, filter);
        std::vector<FinishedRequest> requests;
        while (rows.step()) requests.push_back(requestFromRow(rows));
        return requests;
    });
}

std::vector<NameStats> StoreReader::aggregate(const QueryFilter& filter) {
    // No ORDER BY: grouped here, so that SQLite reads the table in its own
    // order (or the time range of --since), not row by row through the name
    // index (1M rows: 0.3 s instead of 2 s).
    std::string sql =
        "SELECT name, duration_ns, outcome = 'error' FROM requests" + whereClause(filter);
    struct Group {
        std::vector<int64_t> durations;
        uint64_t errors = 0;
    };
    std::map<std::string, Group> groups;
    guarded(path_, [&] {
        Statement rows(db_->db.get(), sql.c_str());
        bindFilter(rows, filter);
        while (rows.step()) {
            Group& group = groups[rows.text(0)];
            group.durations.push_back(rows.integer(1));
            group.errors += rows.integer(2) != 0;
        }
    });
    std::vector<NameStats> stats;
    for (auto& [name, group] : groups)
        stats.push_back(statsOf(name, group.durations, group.errors));
    // Most frequent first; names in order among equals (the map's order).
    std::stable_sort(stats.begin(), stats.end(),
                     [](const NameStats& a, const NameStats& b) { return a.count > b.count; });
    if (filter.limit > 0 && stats.size() > filter.limit) stats.resize(filter.limit);
    return stats;
}

}  // namespace vigil
