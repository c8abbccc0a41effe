// The live state of an agent, in a small shared-memory file of its own
// process: the running-requests table and the agent's counters.
//
// The agent writes it from the application's threads without a lock and
// without the GIL; `vigil requests PID` maps it read-only from outside and
// never signals or pauses the process. Each slot is a seqlock with a single
// writer (the thread that owns the request), so a reader either copies a
// consistent slot or sees that it changed and copies it again.
#pragma once
#include <sys/types.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace vigil {

inline constexpr char kStateMagic[8] = {'V', 'I', 'G', 'I', 'L', 'S', 'T', '1'};
inline constexpr uint32_t kStateVersion = 1;

struct StateCounters {
    std::atomic<uint64_t> requestsStarted{0};
    std::atomic<uint64_t> requestsFinished{0};
    std::atomic<uint64_t> requestsUntracked{0};  // the table was full: not in it
    std::atomic<uint64_t> longRequestReports{0};
    std::atomic<uint64_t> logLinesWritten{0};
    std::atomic<uint64_t> logLinesDropped{0};  // log unwritable, or its queue full
    std::atomic<uint64_t> stackWalksFailed{0};
    std::atomic<uint64_t> recordsDropped{0};  // ended requests the rules kept, queue full
    std::atomic<uint64_t> requestLogLines{0};
    std::atomic<uint64_t> reloads{0};
};

struct StateHeader {
    char magic[8];
    uint32_t version;
    uint32_t headerSize;
    int32_t pid;
    uint32_t slotCount;
    uint32_t slotSize;
    std::atomic<uint32_t> slotsTouched;  // one past the highest slot ever claimed
    uint64_t processStartTicks;          // /proc/PID/stat starttime: tells a reused PID apart
    int64_t agentStartNs;                // CLOCK_REALTIME
    char service[64];
    StateCounters counters;
};

// One running request. 512 bytes: eight cache lines, no false sharing
// between the slots of two threads.
struct RequestSlot {
    static constexpr size_t kTxnSize = 32;
    static constexpr size_t kNameSize = 128;
    static constexpr size_t kUserSize = 64;
    static constexpr size_t kAttributesSize = 216;
    static constexpr uint32_t kProfiled = 1;  // flags: the agent samples its thread

    std::atomic<uint32_t> sequence{0};  // odd while the owner writes
    std::atomic<uint32_t> claimed{0};   // 1 from claim to release
    int32_t nativeThreadId = 0;
    uint32_t depth = 0;            // requests of this thread it runs inside of
    uint64_t threadId = 0;         // pthread_self(), threading.get_ident()
    uint64_t threadState = 0;      // PyThreadState address, for the agent's own walks
    uint64_t interpreter = 0;      // PyInterpreterState address
    int64_t startNs = 0;           // CLOCK_REALTIME
    int64_t startMonotonicNs = 0;  // CLOCK_MONOTONIC
    uint64_t serial = 0;           // which request of the process, from 1
    uint32_t flags = 0;
    uint32_t reserved = 0;
    char txn[kTxnSize]{};
    char name[kNameSize]{};
    char user[kUserSize]{};
    // key NUL value NUL ... NUL: as many attributes as fit, each whole.
    char attributes[kAttributesSize]{};
};
static_assert(sizeof(RequestSlot) == 512);

// A consistent copy of a slot, for reading.
struct RequestRecord {
    uint32_t slot = 0;
    uint32_t flags = 0;
    uint64_t serial = 0;
    int32_t nativeThreadId = 0;
    uint64_t threadId = 0;
    uint64_t threadState = 0;
    uint64_t interpreter = 0;
    int64_t startNs = 0;
    int64_t startMonotonicNs = 0;
    std::string txn;
    std::string name;
    std::string user;
    std::vector<std::pair<std::string, std::string>> attributes;
};

// What a request says about itself when it begins.
struct RequestStart {
    std::string_view txn;
    std::string_view name;
    std::string_view user;
    std::span<const std::pair<std::string_view, std::string_view>> attributes;
    int32_t nativeThreadId = 0;
    uint64_t threadId = 0;
    uint64_t threadState = 0;
    uint64_t interpreter = 0;
    uint32_t depth = 0;
    uint32_t flags = 0;
};

// The mapped state file, as the agent (writer) or a reader sees it.
class StateFile {
  public:
    // Creates <dir>/vigil-<pid> with mode 0600 for this process, replacing a
    // stale one left by a dead process with the same PID. Throws Error.
    static StateFile create(const std::string& dir, pid_t pid, uint32_t slots,
                            std::string_view service);
    // Maps the state file of process pid read-only and checks that it is
    // the live process's own: owner, magic, version, PID and start time.
    // Throws Error with what to do when it is not.
    static StateFile open(const std::string& dir, pid_t pid);
    static std::string pathFor(const std::string& dir, pid_t pid);

    StateFile(StateFile&& other) noexcept;
    StateFile& operator=(StateFile&&) = delete;
    StateFile(const StateFile&) = delete;
    ~StateFile();

    // Unlinks the file; the mapping stays valid until destruction, so
    // threads still finishing requests never write into unmapped memory.
    void unlink();
    // Forgets the mapping without unmapping it: after fork, the child
    // leaves the parent's file to the parent.
    void abandon();

    StateHeader& header() { return *header_; }
    const StateHeader& header() const { return *header_; }
    StateCounters& counters() { return header_->counters; }
    uint32_t slotCount() const { return header_->slotCount; }
    // Readers look at these slots only: the others were never used.
    uint32_t slotsTouched() const {
        return std::min(header_->slotsTouched.load(std::memory_order_acquire), slotCount());
    }
    const std::string& path() const { return path_; }

    // Claims a free slot, trying hint first; nullopt when the table is full.
    std::optional<uint32_t> claim(uint32_t hint);
    void begin(uint32_t slot, const RequestStart& start, uint64_t serial, int64_t startNs,
               int64_t startMonotonicNs);
    void release(uint32_t slot);
    // A consistent copy of a slot in use; nullopt when it is free or kept
    // changing.
    std::optional<RequestRecord> read(uint32_t slot) const;
    // Every running request, oldest first.
    std::vector<RequestRecord> running() const;
    // The sequence number of a slot: a reader that walked a request's
    // stack checks the request is still the same one afterwards.
    uint32_t sequence(uint32_t slot) const;

  private:
    StateFile(std::string path, void* map, size_t size, bool writable);
    RequestSlot& slot(uint32_t index) const;

    std::string path_;
    void* map_ = nullptr;
    size_t size_ = 0;
    bool writable_ = false;
    StateHeader* header_ = nullptr;
};

// UTC, ISO 8601 with microseconds: 2026-11-22T12:00:16.550123Z.
std::string isoTimeUtc(int64_t realtimeNs);
int64_t clockNs(clockid_t clock);
// A running request as the agent's log and `vigil requests --json` show it.
nlohmann::json requestAsJson(const RequestRecord& request, int64_t nowMonotonicNs);

// The start time of a process in clock ticks since boot (field 22 of
// /proc/PID/stat); nullopt when the process is gone.
std::optional<uint64_t> processStartTicks(pid_t pid);

}  // namespace vigil
