#include "trace/run_dir.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>

#include "core/errors.h"
#include "trace/file_io.h"

namespace vigil::trace {
namespace {

constexpr char kLatest[] = "latest";
constexpr int kMaxRunsPerSecond = 1000;

std::string secondName(int64_t realtimeNs) {
    time_t seconds = static_cast<time_t>(realtimeNs / 1'000'000'000);
    struct tm local {};
    ::localtime_r(&seconds, &local);
    char name[32];
    ::strftime(name, sizeof(name), "%y%m%d-%H%M%S", &local);
    return name;
}

// A relative link, so that the tree can be moved or copied whole.
void pointLatestAt(const std::string& baseDir, const std::string& runName) {
    std::string link = fmt::format("{}/{}", baseDir, kLatest);
    std::string temporary = fmt::format("{}.{}.tmp", link, ::getpid());
    ::unlink(temporary.c_str());
    if (::symlink(runName.c_str(), temporary.c_str()) != 0 ||
        ::rename(temporary.c_str(), link.c_str()) != 0) {
        int error = errno;
        ::unlink(temporary.c_str());
        throw OutputError(
            fmt::format("cannot point {} at {}: {}", link, runName, errorText(error)));
    }
}

}  // namespace

std::string createRunDir(const std::string& baseDir, int64_t realtimeNs) {
    std::error_code error;
    std::filesystem::create_directories(baseDir, error);
    if (error) throw OutputError(fmt::format("cannot create {}: {}", baseDir, error.message()));
    std::string second = secondName(realtimeNs);
    for (int attempt = 1; attempt <= kMaxRunsPerSecond; ++attempt) {
        std::string name = attempt == 1 ? second : fmt::format("{}-{}", second, attempt);
        std::string path = fmt::format("{}/{}", baseDir, name);
        if (::mkdir(path.c_str(), 0755) == 0) {
            pointLatestAt(baseDir, name);
            return path;
        }
        if (errno != EEXIST)
            throw OutputError(fmt::format("cannot create {}: {}", path, errorText(errno)));
    }
    throw OutputError(fmt::format("cannot create a run directory in {}: {} runs in second {}",
                                  baseDir, kMaxRunsPerSecond, second));
}

std::string processDirName(std::string_view processName, pid_t pid, bool withPid) {
    std::string name(processName.empty() ? "process" : processName);
    for (char& c : name)
        if (c == '/') c = '_';
    if (name.front() == '.') name.front() = '_';
    return withPid ? fmt::format("{}-{}", name, pid) : name;
}

}  // namespace vigil::trace
