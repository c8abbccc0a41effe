#include "core/txn_id.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.h"

using vigil::testing::TempDir;

namespace {

// Where TxnIdSource keeps its counter in dir.
std::string counterFile(const TempDir& dir) {
    return dir.sub("vigil-txn-" + std::to_string(geteuid()));
}

}  // namespace

namespace vigil {
namespace {

namespace fs = std::filesystem;

// A directory per test: never /dev/shm itself.

// An id back to its 31 bits (adjective, surname, hex), or UINT32_MAX when it
// is not one of ours. Also proves that the text alone tells ids apart.
uint32_t packedId(std::string_view id) {
    static const auto index = [](std::span<const std::string_view> words) {
        std::unordered_map<std::string_view, uint32_t> map;
        for (uint32_t i = 0; i < words.size(); ++i) map[words[i]] = i;
        return map;
    };
    static const auto adjectives = index(TxnIdSource::adjectives());
    static const auto surnames = index(TxnIdSource::surnames());
    size_t first = id.find('_');
    size_t second = id.find('_', first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos) return UINT32_MAX;
    auto adjective = adjectives.find(id.substr(0, first));
    auto surname = surnames.find(id.substr(first + 1, second - first - 1));
    std::string hex(id.substr(second + 1));
    if (adjective == adjectives.end() || surname == surnames.end() || hex.size() != 4) {
        return UINT32_MAX;
    }
    return adjective->second << 24 | surname->second << 16 | std::stoul(hex, nullptr, 16);
}

uint32_t nextPacked(TxnIdSource& source) {
    char id[TxnIdSource::kMaxLength + 1];
    size_t length = source.next(id);
    return packedId(std::string_view(id, length));
}

// Runs body in a child process; true when it returned true.
template <typename Body>
pid_t spawn(Body body) {
    pid_t pid = fork();
    if (pid == 0) _exit(body() ? 0 : 1);
    return pid;
}

bool succeeded(pid_t pid) {
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

// A child writes the ids it takes to a file, packed, for the parent to check.
bool writeIds(TxnIdSource& source, const std::string& path, int count) {
    FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) return false;
    for (int i = 0; i < count; ++i) {
        uint32_t packed = nextPacked(source);
        std::fwrite(&packed, sizeof packed, 1, file);
    }
    return std::fclose(file) == 0;
}

std::vector<uint32_t> readIds(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::vector<uint32_t> ids;
    uint32_t packed;
    while (file.read(reinterpret_cast<char*>(&packed), sizeof packed)) ids.push_back(packed);
    return ids;
}

void writeFile(const std::string& path, mode_t mode, const std::string& content) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ASSERT_EQ(fchmod(fd, mode), 0);
    ::close(fd);
}

TEST(TxnId, FormatIsAdjectiveSurnameHex) {
    std::regex pattern("^[a-z]+_[a-z]+_[0-9a-f]{4}$");
    char id[TxnIdSource::kMaxLength + 1];
    for (uint32_t counter : {0u, 1u, 2u, 12345u, TxnIdSource::kIdMask, 0xffffffffu}) {
        size_t length = TxnIdSource::format(counter, id);
        EXPECT_EQ(length, std::strlen(id));
        EXPECT_LE(length, TxnIdSource::kMaxLength);
        EXPECT_TRUE(std::regex_match(id, pattern)) << id;
    }
    // Only the low 31 bits count.
    std::string low(id, TxnIdSource::format(5, id));
    EXPECT_EQ(low, std::string(id, TxnIdSource::format(5u | 0x80000000u, id)));
}

TEST(TxnId, WordListsAreUniqueLowerCaseWords) {
    for (auto [words, count] :
         {std::pair{TxnIdSource::adjectives(), 128u}, std::pair{TxnIdSource::surnames(), 256u}}) {
        EXPECT_EQ(words.size(), count);
        std::set<std::string_view> unique(words.begin(), words.end());
        EXPECT_EQ(unique.size(), count);
        for (std::string_view word : words) {
            EXPECT_TRUE(std::regex_match(std::string(word), std::regex("^[a-z]+$"))) << word;
        }
    }
}

TEST(TxnId, MixIsABijection) {
    std::vector<uint32_t> sample;
    for (uint32_t i = 0; i < 100000; ++i) sample.push_back(i);
    for (uint32_t i = 0; i < 100000; ++i) sample.push_back(TxnIdSource::kIdMask - i);
    for (uint32_t x = 1; x < TxnIdSource::kIdMask / 7; x *= 7) sample.push_back(x);
    for (uint32_t x : sample) {
        uint32_t mixed = TxnIdSource::mix(x);
        ASSERT_LE(mixed, TxnIdSource::kIdMask);
        ASSERT_EQ(TxnIdSource::unmix(mixed), x);
        ASSERT_EQ(TxnIdSource::mix(TxnIdSource::unmix(x)), x);
    }
}

TEST(TxnId, ConsecutiveIdsLookUnrelated) {
    std::set<uint32_t> adjectives, surnames;
    for (uint32_t counter = 1000; counter < 1256; ++counter) {
        uint32_t mixed = TxnIdSource::mix(counter);
        adjectives.insert(mixed >> 24);
        surnames.insert((mixed >> 16) & 0xff);
    }
    EXPECT_GT(adjectives.size(), 64u);
    EXPECT_GT(surnames.size(), 128u);
}

TEST(TxnIdSource, AMillionConsecutiveIdsAreDistinct) {
    TempDir dir{"vigil-txn-test"};
    TxnIdSource source = TxnIdSource::open(dir.path());
    EXPECT_EQ(source.fallbackReason(), "");
    std::unordered_set<uint32_t> seen;
    seen.reserve(1000000);
    for (int i = 0; i < 1000000; ++i) seen.insert(nextPacked(source));
    EXPECT_EQ(seen.count(UINT32_MAX), 0u);
    EXPECT_EQ(seen.size(), 1000000u);
}

TEST(TxnIdSource, CreatesAPrivateCounterFile) {
    TempDir dir{"vigil-txn-test"};
    TxnIdSource source = TxnIdSource::open(dir.path());
    EXPECT_EQ(source.fallbackReason(), "");
    struct stat status;
    ASSERT_EQ(lstat(counterFile(dir).c_str(), &status), 0);
    EXPECT_TRUE(S_ISREG(status.st_mode));
    EXPECT_EQ(status.st_mode & 07777, 0600u);
    EXPECT_EQ(status.st_uid, geteuid());
    EXPECT_EQ(status.st_size, 16);
}

TEST(TxnIdSource, StartsAtARandomPlace) {
    TempDir first{"vigil-txn-test"},
        second{"vigil-txn-test"};  // as after a reboot: a new, empty directory
    TxnIdSource a = TxnIdSource::open(first.path());
    TxnIdSource b = TxnIdSource::open(second.path());
    EXPECT_NE(nextPacked(a), nextPacked(b));  // wrong once in 2^31 runs
}

TEST(TxnIdSource, TwoSourcesOnOneDirectoryNeverCollide) {
    TempDir dir{"vigil-txn-test"};
    TxnIdSource a = TxnIdSource::open(dir.path());
    TxnIdSource b = TxnIdSource::open(dir.path());
    ASSERT_EQ(a.fallbackReason(), "");
    ASSERT_EQ(b.fallbackReason(), "");
    std::vector<uint32_t> fromA, fromB;
    std::thread thread([&] {
        for (int i = 0; i < 100000; ++i) fromB.push_back(nextPacked(b));
    });
    for (int i = 0; i < 100000; ++i) fromA.push_back(nextPacked(a));
    thread.join();
    std::unordered_set<uint32_t> seen(fromA.begin(), fromA.end());
    seen.insert(fromB.begin(), fromB.end());
    EXPECT_EQ(seen.size(), 200000u);
}

TEST(TxnIdSource, ProcessesRacingToCreateTheFileShareIt) {
    TempDir dir{"vigil-txn-test"};
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    constexpr int kChildren = 4;
    constexpr int kIds = 100000;
    std::vector<pid_t> children;
    for (int i = 0; i < kChildren; ++i) {
        children.push_back(spawn([&, i] {
            ::close(go[1]);
            char byte;
            (void)!::read(go[0], &byte, 1);  // returns when the parent closes its end
            TxnIdSource source = TxnIdSource::open(dir.path());
            return source.fallbackReason().empty() &&
                   writeIds(source, dir.path() + "/ids-" + std::to_string(i), kIds);
        }));
    }
    // And a fork of a process that already has the counter: the mapping is shared.
    TxnIdSource parent = TxnIdSource::open(dir.path());
    ASSERT_EQ(parent.fallbackReason(), "");
    children.push_back(spawn([&] {
        ::close(go[1]);
        return writeIds(parent, dir.path() + "/ids-forked", kIds);
    }));
    ::close(go[0]);
    ::close(go[1]);
    std::vector<uint32_t> all;
    for (int i = 0; i < kIds; ++i) all.push_back(nextPacked(parent));
    for (pid_t child : children) EXPECT_TRUE(succeeded(child));
    for (const auto& entry : fs::directory_iterator(dir.path())) {
        if (!entry.path().filename().string().starts_with("ids-")) continue;
        std::vector<uint32_t> ids = readIds(entry.path());
        EXPECT_EQ(ids.size(), static_cast<size_t>(kIds)) << entry.path();
        all.insert(all.end(), ids.begin(), ids.end());
    }
    ASSERT_EQ(all.size(), static_cast<size_t>((kChildren + 2) * kIds));
    std::unordered_set<uint32_t> seen(all.begin(), all.end());
    EXPECT_EQ(seen.count(UINT32_MAX), 0u);
    EXPECT_EQ(seen.size(), all.size());
}

TEST(TxnIdSource, FallbackIsStillSharedWithForks) {
    TempDir dir{"vigil-txn-test"};
    TxnIdSource source = TxnIdSource::open(dir.path() + "/missing");
    EXPECT_NE(source.fallbackReason().find("No such file or directory"), std::string::npos)
        << source.fallbackReason();
    pid_t child = spawn([&] { return writeIds(source, dir.path() + "/ids", 10000); });
    std::unordered_set<uint32_t> seen;
    for (int i = 0; i < 10000; ++i) seen.insert(nextPacked(source));
    ASSERT_TRUE(succeeded(child));
    for (uint32_t id : readIds(dir.path() + "/ids")) seen.insert(id);
    EXPECT_EQ(seen.size(), 20000u);
}

std::string reasonFor(const TempDir& dir) {
    return TxnIdSource::open(dir.path()).fallbackReason();
}

TEST(TxnIdSource, RefusesAFileOfAnotherUser) {
    if (geteuid() != 0) GTEST_SKIP() << "only root can give a file to another user";
    TempDir dir{"vigil-txn-test"};
    writeFile(counterFile(dir), 0600, std::string(16, '\0'));
    ASSERT_EQ(chown(counterFile(dir).c_str(), 65534, 65534), 0);
    EXPECT_NE(reasonFor(dir).find("owned by uid 65534"), std::string::npos) << reasonFor(dir);
}

TEST(TxnIdSource, RefusesAFileWithTheWrongMode) {
    TempDir dir{"vigil-txn-test"};
    writeFile(counterFile(dir), 0644, std::string(16, '\0'));
    EXPECT_NE(reasonFor(dir).find("its mode is 0644, not 0600"), std::string::npos)
        << reasonFor(dir);
}

TEST(TxnIdSource, RefusesAFileWithTheWrongSize) {
    TempDir dir{"vigil-txn-test"};
    writeFile(counterFile(dir), 0600, std::string(100, '\0'));
    EXPECT_NE(reasonFor(dir).find("its size is 100 bytes, not 16"), std::string::npos)
        << reasonFor(dir);
}

TEST(TxnIdSource, RefusesAFileWithOtherContent) {
    TempDir dir{"vigil-txn-test"};
    writeFile(counterFile(dir), 0600, "not a counter!!!");
    EXPECT_NE(reasonFor(dir).find("does not hold a vigil counter"), std::string::npos)
        << reasonFor(dir);
}

TEST(TxnIdSource, RefusesASymbolicLinkOrADirectory) {
    TempDir dir{"vigil-txn-test"};
    writeFile(dir.path() + "/target", 0600, std::string(16, '\0'));
    fs::create_symlink(dir.path() + "/target", counterFile(dir));
    EXPECT_NE(reasonFor(dir).find("symbolic link"), std::string::npos) << reasonFor(dir);
    fs::remove(counterFile(dir));
    fs::create_directory(counterFile(dir));
    EXPECT_NE(reasonFor(dir).find("cannot open it"), std::string::npos) << reasonFor(dir);
}

TEST(TxnIdSource, FinishesTheFileOfACreatorThatDied) {
    TempDir dir{"vigil-txn-test"};
    writeFile(counterFile(dir), 0600, "");  // created, never sized nor initialised
    EXPECT_EQ(reasonFor(dir), "");
    EXPECT_EQ(fs::file_size(counterFile(dir)), 16u);
}

TEST(TxnIdSource, GivesUpOnAFileLockedForGood) {
    TempDir dir{"vigil-txn-test"};
    writeFile(counterFile(dir), 0600, "");
    int fd = ::open(counterFile(dir).c_str(), O_RDONLY);
    ASSERT_EQ(flock(fd, LOCK_EX), 0);  // as a creator that hangs
    EXPECT_NE(reasonFor(dir).find("another process kept it locked"), std::string::npos);
    ::close(fd);
    EXPECT_EQ(reasonFor(dir), "");
}

TEST(TxnIdSource, ReadOnlyDirectoryFallsBack) {
    TempDir dir{"vigil-txn-test"};
    ASSERT_EQ(chmod(dir.path().c_str(), 0555), 0);
    // Root writes anywhere: the check runs in a child that is someone else.
    auto check = [&] {
        std::string reason = reasonFor(dir);
        return reason.find("Permission denied") != std::string::npos;
    };
    if (geteuid() != 0) {
        EXPECT_TRUE(check()) << reasonFor(dir);
        return;
    }
    pid_t child = spawn([&] {
        return setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0 &&
               check();
    });
    EXPECT_TRUE(succeeded(child));
}

TEST(TxnIdSource, MovingKeepsTheCounter) {
    TempDir dir{"vigil-txn-test"};
    TxnIdSource first = TxnIdSource::open(dir.path());
    uint32_t before = nextPacked(first);
    TxnIdSource moved = std::move(first);
    uint32_t after = nextPacked(moved);
    EXPECT_EQ(TxnIdSource::unmix(after), (TxnIdSource::unmix(before) + 1) & TxnIdSource::kIdMask);
}

}  // namespace
}  // namespace vigil
