// The embedded store: finished requests, with their profiles and exceptions,
// in one SQLite database per service, `<dir>/vigil.sqlite3`.
//
// The agent writes it through a StoreWriter: the application's threads only
// put records on a bounded queue (never waiting: a full queue drops and
// counts), a background thread commits them in batches and keeps the file
// within its age and size limits. Several processes of one service share a
// store: WAL journal, short transactions, a small busy timeout. `vigil show`
// and `vigil query` read it through a StoreReader.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/profile.h"
#include "core/request_record.h"

namespace vigil {

// PRAGMA user_version of the stores this vigil writes; a store with another
// (newer) one is refused with a message saying so.
inline constexpr int kStoreSchemaVersion = 1;

// `<dir>/vigil.sqlite3`
std::string storePath(const std::string& dir);
// $VIGIL_STORE_DIR, else ~/.local/state/vigil: the agent's default [store] dir.
std::string defaultStoreDir();

struct StoreLimits {
    int64_t maxAgeNs = 7 * 86400 * 1'000'000'000LL;  // 0: no limit
    int64_t maxSizeBytes = 1LL << 30;                // pages in use, WAL excluded; 0: no limit
    size_t queueCapacity = 10000;                    // records waiting for the thread
    // Retention runs when something was written and this long has passed
    // since it last ran (tests set 0: after every batch).
    int64_t retentionIntervalNs = 10'000'000'000LL;
    // A store that could not be opened or written is tried again this long
    // after the failure.
    int64_t reopenDelayNs = 5'000'000'000LL;
};

class StoreWriter {
  public:
    // report gets one line (no "vigil: " prefix) when the store starts
    // failing (locked, corrupt, unwritable: it names the file and what to
    // do) and when it works again; never more than once per failure. It is
    // called on the writer's thread. Nothing is opened here: the thread
    // opens the store, so a broken one never delays the application.
    StoreWriter(std::string dir, StoreLimits limits,
                std::function<void(const std::string&)> report);
    // Flushes, then joins the thread.
    ~StoreWriter();
    StoreWriter(const StoreWriter&) = delete;
    StoreWriter& operator=(const StoreWriter&) = delete;

    // Never waits for the disk: the only lock it takes, the thread holds just
    // to swap the queue out. False when the queue is full: the record is
    // then dropped (counted) and left as it was.
    bool submit(FinishedRequest&& request);
    // Returns once everything submitted before the call is committed (or
    // dropped because the store failed). Waits for resume() when paused.
    void flush();

    // Fork: a child must never use this object (its thread did not survive
    // the fork, and its SQLite connection belongs to the parent). The agent
    // makes a new StoreWriter in the child and leaks the parent's there on
    // purpose: destroying it would wait for a thread that does not exist.
    // pause() before fork() (os.register_at_fork's `before`) makes the
    // thread finish its batch and close its connection, so that neither a
    // lock of SQLite's nor the parent's open file is copied into the child
    // mid-use; resume() after it in the parent. submit() still works while
    // paused (the queue fills, then drops). Not reentrant: one pause at once.
    void pause();
    void resume();

    uint64_t written() const { return written_.load(std::memory_order_relaxed); }
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    const std::string& path() const { return path_; }

  private:
    struct Connection;

    void run();
    bool mustWake() const;
    void park(std::unique_lock<std::mutex>& lock);
    void process(std::vector<FinishedRequest>& batch);
    void writeBatch(std::vector<FinishedRequest>& batch, int64_t now);
    bool ensureOpen(int64_t now);
    void retainIfDue(int64_t now);
    void failed(int code, const std::string& what, int64_t now);
    void recovered();

    const std::string dir_;
    const std::string path_;
    const StoreLimits limits_;
    const std::function<void(const std::string&)> report_;
    const size_t wakeAt_;  // queue length at which submit() wakes the thread

    std::mutex mutex_;
    std::condition_variable wake_;  // to the thread: work, flush, pause, stop
    std::condition_variable done_;  // from the thread: batch done, parked
    std::vector<FinishedRequest> pending_;
    uint64_t accepted_ = 0;   // records submit() took
    uint64_t processed_ = 0;  // of those, committed or dropped by the thread
    uint64_t flushTarget_ = 0;
    bool paused_ = false;
    bool parked_ = false;
    bool stopping_ = false;

    std::atomic<uint64_t> written_{0};
    std::atomic<uint64_t> dropped_{0};

    // The thread's own state: only it touches these.
    std::unique_ptr<Connection> db_;
    std::vector<FinishedRequest> batch_;
    int64_t retryAtNs_ = 0;
    int64_t lastRetentionNs_ = 0;
    bool wroteSinceRetention_ = true;
    bool failing_ = false;
    uint64_t droppedWhileFailing_ = 0;

    std::thread thread_;  // last: starts once everything above exists
};

enum class QuerySort { kSlowest, kRecent, kOldest };

struct QueryFilter {
    std::optional<int64_t> sinceNs;   // start_ns >= this (CLOCK_REALTIME)
    std::string nameGlob;             // SQLite GLOB (* ? [a-z], case-sensitive); "" any
    std::optional<std::string> user;  // exact; "" = requests without a user
    bool errorsOnly = false;
    QuerySort sort = QuerySort::kRecent;
    size_t limit = 0;  // 0: all
};

struct NameStats {
    std::string name;
    uint64_t count = 0;
    uint64_t errors = 0;
    // Nearest rank: the smallest stored duration that at least p% of the
    // requests do not exceed (never an interpolation).
    int64_t p50Ns = 0;
    int64_t p95Ns = 0;
    int64_t p99Ns = 0;
};

class StoreReader {
  public:
    // Read-only. Throws BadFileError when dir holds no store, or one that
    // is corrupt, not vigil's, or of a newer schema.
    explicit StoreReader(const std::string& dir);
    ~StoreReader();
    StoreReader(const StoreReader&) = delete;
    StoreReader& operator=(const StoreReader&) = delete;

    // The whole record: profile and exception included.
    std::optional<FinishedRequest> find(const std::string& txn);
    // Requests only: profileFolded and exception are left empty (find()
    // has them).
    std::vector<FinishedRequest> query(const QueryFilter& filter);
    // One entry per name among the requests the filter selects (its sort and
    // limit aside), most frequent first; filter.limit caps the names.
    std::vector<NameStats> aggregate(const QueryFilter& filter);

    const std::string& path() const { return path_; }

  private:
    struct Connection;
    std::string path_;
    std::unique_ptr<Connection> db_;
};

// With a timeline (for a profile that keeps one), each line's samples are
// also laid on a track, one period apart in the order of the lines: folded
// stacks keep no time order, so equal stacks end up side by side.
struct FoldedTimeline {
    uint32_t track = 0;
    int64_t periodNs = 1;
};

// Collapsed stacks ("a (f.py:1);b (f.py:2) 12" lines) added to a profile; a
// frame not shaped "name (file:line)" becomes a label of its own. Lines that
// do not parse are skipped.
void addFoldedStacks(std::string_view folded, Profile& profile,
                     std::optional<FoldedTimeline> timeline = std::nullopt);

// "2.011 s", "12.345 ms", "850 µs": durations as show and query print them.
std::string durationText(int64_t ns);

}  // namespace vigil
