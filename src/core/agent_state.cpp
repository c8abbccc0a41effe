#include "core/agent_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {
namespace {

size_t slotsOffset() {
    return (sizeof(StateHeader) + 63) / 64 * 64;
}

size_t fileSize(uint32_t slots) {
    return slotsOffset() + size_t{slots} * sizeof(RequestSlot);
}

std::string errnoText() {
    return std::strerror(errno);
}

// Copies text into a fixed field, cut at a UTF-8 character boundary.
void copyField(char* field, size_t capacity, std::string_view text) {
    size_t length = std::min(text.size(), capacity - 1);
    while (length > 0 && length < text.size() && (text[length] & 0xC0) == 0x80) --length;
    std::memcpy(field, text.data(), length);
    std::memset(field + length, 0, capacity - length);
}

void packAttributes(char* field, size_t capacity,
                    std::span<const std::pair<std::string_view, std::string_view>> attributes) {
    size_t used = 0;
    for (const auto& [key, value] : attributes) {
        size_t need = key.size() + value.size() + 2;
        if (used + need + 1 > capacity) break;  // only whole attributes
        std::memcpy(field + used, key.data(), key.size());
        used += key.size();
        field[used++] = '\0';
        std::memcpy(field + used, value.data(), value.size());
        used += value.size();
        field[used++] = '\0';
    }
    std::memset(field + used, 0, capacity - used);
}

std::string fieldText(const char* field, size_t capacity) {
    return std::string(field, strnlen(field, capacity));
}

std::vector<std::pair<std::string, std::string>> unpackAttributes(const char* field,
                                                                  size_t capacity) {
    std::vector<std::pair<std::string, std::string>> out;
    size_t at = 0;
    while (at < capacity && field[at] != '\0') {
        std::string key = fieldText(field + at, capacity - at);
        at += key.size() + 1;
        if (at >= capacity) break;
        std::string value = fieldText(field + at, capacity - at);
        at += value.size() + 1;
        out.emplace_back(std::move(key), std::move(value));
    }
    return out;
}

void initialiseHeader(StateHeader& header, pid_t pid, uint32_t slots, std::string_view service) {
    new (&header.counters) StateCounters();
    new (&header.slotsTouched) std::atomic<uint32_t>(0);
    header.version = kStateVersion;
    header.headerSize = static_cast<uint32_t>(slotsOffset());
    header.pid = pid;
    header.slotCount = slots;
    header.slotSize = sizeof(RequestSlot);
    header.processStartTicks = processStartTicks(pid).value_or(0);
    header.agentStartNs = clockNs(CLOCK_REALTIME);
    copyField(header.service, sizeof(header.service), service);
    // The magic last: a reader that sees it sees the rest.
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(header.magic, kStateMagic, sizeof(kStateMagic));
}

// A state file left by a process that is gone, or by an earlier process
// that had the same PID.
bool isStale(const std::string& path, pid_t pid) {
    std::ifstream in(path, std::ios::binary);
    StateHeader header{};
    if (!in.read(reinterpret_cast<char*>(&header), offsetof(StateHeader, counters))) return true;
    return header.pid != pid || header.processStartTicks != processStartTicks(pid).value_or(0);
}

// Removes the state files of this user's processes that are gone: workers
// of pre-forking servers often leave with _exit, which runs no clean-up.
void sweepStale(const std::string& dir) {
    DIR* listing = ::opendir(dir.c_str());
    if (!listing) return;
    while (dirent* entry = ::readdir(listing)) {
        std::string_view name = entry->d_name;
        if (!name.starts_with("vigil-") || name.size() <= 6 ||
            name.find_first_not_of("0123456789", 6) != std::string_view::npos)
            continue;
        std::string path = fmt::format("{}/{}", dir, name);
        struct stat status {};
        pid_t pid = static_cast<pid_t>(std::stol(std::string(name.substr(6))));
        if (::lstat(path.c_str(), &status) == 0 && S_ISREG(status.st_mode) &&
            status.st_uid == ::geteuid() && isStale(path, pid))
            ::unlink(path.c_str());
    }
    ::closedir(listing);
}

}  // namespace

int64_t clockNs(clockid_t clock) {
    timespec now{};
    clock_gettime(clock, &now);
    return now.tv_sec * 1'000'000'000LL + now.tv_nsec;
}

std::string isoTimeUtc(int64_t realtimeNs) {
    time_t seconds = static_cast<time_t>(realtimeNs / 1'000'000'000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:06d}Z", utc, (realtimeNs % 1'000'000'000) / 1000);
}

nlohmann::json requestAsJson(const RequestRecord& request, int64_t nowMonotonicNs) {
    nlohmann::json attributes = nlohmann::json::object();
    for (const auto& [key, value] : request.attributes) attributes[key] = value;
    double elapsedMs =
        static_cast<double>((nowMonotonicNs - request.startMonotonicNs) / 1000) / 1e3;
    return {{"txn", request.txn},
            {"name", request.name},
            {"user", request.user.empty() ? nlohmann::json(nullptr) : nlohmann::json(request.user)},
            {"attributes", std::move(attributes)},
            {"native_thread_id", request.nativeThreadId},
            {"thread_id", request.threadId},
            {"started", isoTimeUtc(request.startNs)},
            {"elapsed", std::round(elapsedMs) / 1e3}};
}

std::optional<uint64_t> processStartTicks(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string stat;
    if (!std::getline(in, stat)) return std::nullopt;
    // The command name may hold spaces and parentheses: fields count from
    // the last ')'.
    size_t close = stat.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    for (int index = 3; index <= 22 && fields >> field; ++index) {
        if (index == 22) return std::stoull(field);
    }
    return std::nullopt;
}

std::string StateFile::pathFor(const std::string& dir, pid_t pid) {
    return fmt::format("{}/vigil-{}", dir, pid);
}

StateFile StateFile::create(const std::string& dir, pid_t pid, uint32_t slots,
                            std::string_view service) {
    sweepStale(dir);
    std::string path = pathFor(dir, pid);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        throw OutputError(
            fmt::format("cannot create the agent's state file {}: {} (set [state] dir "
                        "to a writable directory)",
                        path, errnoText()));
    size_t size = fileSize(slots);
    void* map = MAP_FAILED;
    if (::fchmod(fd, 0600) == 0 && ::ftruncate(fd, static_cast<off_t>(size)) == 0)
        map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int error = errno;
    ::close(fd);
    if (map == MAP_FAILED) {
        ::unlink(path.c_str());
        throw OutputError(
            fmt::format("cannot size the agent's state file {}: {}", path, std::strerror(error)));
    }
    StateFile file(path, map, size, true);
    initialiseHeader(*file.header_, pid, slots, service);
    return file;
}

StateFile StateFile::open(const std::string& dir, pid_t pid) {
    std::string path = pathFor(dir, pid);
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        throw NoAgentError(
            fmt::format("process {} has no vigil agent ({} does not exist): start "
                        "the app with `vigil run`, VIGIL_CONFIG or vigil.start()",
                        pid, path));
    if (fd < 0 && (errno == EACCES || errno == EPERM))
        throw PermissionError(
            fmt::format("not allowed to read {}: run vigil as the user of process {}", path, pid));
    if (fd < 0) throw BadFileError(fmt::format("cannot open {}: {}", path, errnoText()));
    struct stat status {};
    ::fstat(fd, &status);
    auto fail = [&](const std::string& why) {
        ::close(fd);
        throw BadFileError(fmt::format("{}: {}", path, why));
    };
    if (!S_ISREG(status.st_mode)) fail("not a regular file");
    // Only the agent's own user may have written it: anyone else's file
    // could lie about the process.
    if (status.st_uid != ::geteuid() && ::geteuid() != 0)
        fail("owned by another user; it is not this agent's state file");
    if (static_cast<size_t>(status.st_size) < sizeof(StateHeader))
        fail("truncated: not a vigil state file");
    size_t size = static_cast<size_t>(status.st_size);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) throw BadFileError(fmt::format("cannot map {}: {}", path, errnoText()));
    StateFile file(path, map, size, false);
    const StateHeader& header = *file.header_;
    if (std::memcmp(header.magic, kStateMagic, sizeof(kStateMagic)) != 0)
        throw BadFileError(fmt::format("{}: not a vigil state file (bad magic)", path));
    if (header.version != kStateVersion)
        throw BadFileError(fmt::format("{}: state format {} is not the {} this vigil reads", path,
                                       header.version, kStateVersion));
    if (header.slotSize != sizeof(RequestSlot) || header.headerSize != slotsOffset() ||
        fileSize(header.slotCount) > size)
        throw BadFileError(fmt::format("{}: corrupt state file (sizes do not add up)", path));
    auto startTicks = processStartTicks(pid);
    if (!startTicks)
        throw NoSuchProcessError(
            fmt::format("no process with PID {} ({} is left from it: "
                        "remove it)",
                        pid, path));
    if (header.pid != pid || header.processStartTicks != *startTicks)
        throw NoAgentError(
            fmt::format("{} is stale: it was left by an earlier process with PID "
                        "{}, and process {} has no agent",
                        path, header.pid, pid));
    return file;
}

StateFile::StateFile(std::string path, void* map, size_t size, bool writable)
    : path_(std::move(path)),
      map_(map),
      size_(size),
      writable_(writable),
      header_(static_cast<StateHeader*>(map)) {}

StateFile::StateFile(StateFile&& other) noexcept
    : path_(std::move(other.path_)),
      map_(std::exchange(other.map_, nullptr)),
      size_(other.size_),
      writable_(other.writable_),
      header_(std::exchange(other.header_, nullptr)) {}

StateFile::~StateFile() {
    if (map_) ::munmap(map_, size_);
}

void StateFile::unlink() {
    if (writable_ && !path_.empty()) ::unlink(path_.c_str());
    path_.clear();
}

void StateFile::abandon() {
    map_ = nullptr;
    header_ = nullptr;
    path_.clear();
}

RequestSlot& StateFile::slot(uint32_t index) const {
    auto* base = static_cast<uint8_t*>(map_) + slotsOffset();
    return reinterpret_cast<RequestSlot*>(base)[index];
}

std::optional<uint32_t> StateFile::claim(uint32_t hint) {
    uint32_t count = slotCount();
    for (uint32_t step = 0; step < count; ++step) {
        uint32_t index = (hint + step) % count;
        uint32_t expected = 0;
        if (slot(index).claimed.load(std::memory_order_relaxed) == 0 &&
            slot(index).claimed.compare_exchange_strong(expected, 1, std::memory_order_acquire)) {
            uint32_t touched = header_->slotsTouched.load(std::memory_order_relaxed);
            while (touched <= index && !header_->slotsTouched.compare_exchange_weak(
                                           touched, index + 1, std::memory_order_release)) {
            }
            return index;
        }
    }
    return std::nullopt;
}

void StateFile::begin(uint32_t index, const RequestStart& start, uint64_t serial, int64_t startNs,
                      int64_t startMonotonicNs) {
    RequestSlot& target = slot(index);
    uint32_t sequence = target.sequence.load(std::memory_order_relaxed);
    target.sequence.store(sequence + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    target.nativeThreadId = start.nativeThreadId;
    target.depth = start.depth;
    target.threadId = start.threadId;
    target.threadState = start.threadState;
    target.interpreter = start.interpreter;
    target.startNs = startNs;
    target.startMonotonicNs = startMonotonicNs;
    target.serial = serial;
    target.flags = start.flags;
    copyField(target.txn, sizeof(target.txn), start.txn);
    copyField(target.name, sizeof(target.name), start.name);
    copyField(target.user, sizeof(target.user), start.user);
    packAttributes(target.attributes, sizeof(target.attributes), start.attributes);
    target.sequence.store(sequence + 2, std::memory_order_release);
}

void StateFile::release(uint32_t index) {
    RequestSlot& target = slot(index);
    uint32_t sequence = target.sequence.load(std::memory_order_relaxed);
    target.sequence.store(sequence + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    target.serial = 0;
    target.sequence.store(sequence + 2, std::memory_order_release);
    target.claimed.store(0, std::memory_order_release);
}

uint32_t StateFile::sequence(uint32_t index) const {
    return slot(index).sequence.load(std::memory_order_acquire);
}

std::optional<RequestRecord> StateFile::read(uint32_t index) const {
    const RequestSlot& source = slot(index);
    for (int attempt = 0; attempt < 100; ++attempt) {
        uint32_t before = source.sequence.load(std::memory_order_acquire);
        if (before & 1) continue;
        RequestSlot copy;
        // A racy copy by design (seqlock): it is only used when the sequence
        // shows no write overlapped it.
        std::memcpy(static_cast<void*>(&copy), static_cast<const void*>(&source), sizeof(copy));
        std::atomic_thread_fence(std::memory_order_acquire);
        if (source.sequence.load(std::memory_order_relaxed) != before) continue;
        if (copy.serial == 0) return std::nullopt;
        RequestRecord record;
        record.slot = index;
        record.serial = copy.serial;
        record.flags = copy.flags;
        record.nativeThreadId = copy.nativeThreadId;
        record.threadId = copy.threadId;
        record.threadState = copy.threadState;
        record.interpreter = copy.interpreter;
        record.startNs = copy.startNs;
        record.startMonotonicNs = copy.startMonotonicNs;
        record.txn = fieldText(copy.txn, sizeof(copy.txn));
        record.name = fieldText(copy.name, sizeof(copy.name));
        record.user = fieldText(copy.user, sizeof(copy.user));
        record.attributes = unpackAttributes(copy.attributes, sizeof(copy.attributes));
        return record;
    }
    return std::nullopt;
}

std::vector<RequestRecord> StateFile::running() const {
    std::vector<RequestRecord> records;
    for (uint32_t index = 0; index < slotsTouched(); ++index) {
        if (auto record = read(index)) records.push_back(std::move(*record));
    }
    std::sort(records.begin(), records.end(),
              [](const auto& a, const auto& b) { return a.startNs < b.startNs; });
    return records;
}

}  // namespace vigil
