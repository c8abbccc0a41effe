#include "core/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {
namespace {

std::string procPath(pid_t pid, const char* what) {
    return fmt::format("/proc/{}/{}", pid, what);
}

// Reads a small /proc file in one go; nullopt with errno set on failure.
std::optional<std::string> readProcFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string content;
    char buffer[4096];
    ssize_t got;
    while ((got = ::read(fd, buffer, sizeof(buffer))) > 0) content.append(buffer, got);
    int savedErrno = errno;
    ::close(fd);
    if (got < 0) {
        errno = savedErrno;
        return std::nullopt;
    }
    return content;
}

[[noreturn]] void throwProcError(pid_t pid, const std::string& path) {
    if (errno == ENOENT || errno == ESRCH) {
        throw NoSuchProcessError(
            fmt::format("no process with PID {}: check the PID (ps, pgrep)", pid));
    }
    if (errno == EACCES || errno == EPERM) {
        throw PermissionError(fmt::format(
            "not allowed to inspect process {} ({}): run vigil as the same user or as root, or "
            "grant CAP_SYS_PTRACE (containers need --cap-add SYS_PTRACE; check "
            "/proc/sys/kernel/yama/ptrace_scope)",
            pid, path));
    }
    throw Error(ExitCode::kInternal, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
}

// The state letter is the first field after the parenthesised command name,
// which may itself contain spaces and parentheses.
char stateLetter(const std::string& stat) {
    size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) return '?';
    return stat[close + 2];
}

}  // namespace

std::optional<MemoryMap> parseMapsLine(const std::string& line) {
    MemoryMap map;
    char perms[5] = {};
    unsigned long long start, end, offset, inode;
    int pathStart = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %4s %llx %*x:%*x %llu %n", &start, &end, perms,
                    &offset, &inode, &pathStart) < 5) {
        return std::nullopt;
    }
    map.start = start;
    map.end = end;
    map.fileOffset = offset;
    map.readable = perms[0] == 'r';
    map.writable = perms[1] == 'w';
    map.executable = perms[2] == 'x';
    if (pathStart > 0 && static_cast<size_t>(pathStart) < line.size())
        map.path = line.substr(pathStart);
    return map;
}

ProcessInfo::ProcessInfo(pid_t pid) : pid_(pid) {
    if (pid <= 0)
        throw NoSuchProcessError(
            fmt::format("no process with PID {}: a PID is a positive number", pid));
    readMaps();
    char link[4096];
    ssize_t length = ::readlink(procPath(pid, "exe").c_str(), link, sizeof(link) - 1);
    if (length > 0) executable_.assign(link, length);
    if (auto cmdline = readProcFile(procPath(pid, "cmdline"))) {
        for (char& c : *cmdline) c = c == '\0' ? ' ' : c;
        while (!cmdline->empty() && cmdline->back() == ' ') cmdline->pop_back();
        commandLine_ = *cmdline;
    }
}

void ProcessInfo::readMaps() {
    std::string path = procPath(pid_, "maps");
    auto content = readProcFile(path);
    if (!content) throwProcError(pid_, path);
    if (content->empty() && !alive()) {
        throw NoSuchProcessError(fmt::format("process {} has exited (it is a zombie)", pid_));
    }
    std::istringstream lines(*content);
    std::string line;
    while (std::getline(lines, line)) {
        if (auto map = parseMapsLine(line)) maps_.push_back(std::move(*map));
    }
}

std::string ProcessInfo::hostPath(const std::string& path) const {
    return fmt::format("/proc/{}/root{}", pid_, path);
}

std::vector<pid_t> ProcessInfo::threadIds() const {
    std::vector<pid_t> tids;
    DIR* dir = ::opendir(procPath(pid_, "task").c_str());
    if (!dir) return tids;
    while (dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9')
            tids.push_back(std::atoi(entry->d_name));
    }
    ::closedir(dir);
    return tids;
}

TaskState ProcessInfo::taskState(pid_t tid) const {
    auto stat = readProcFile(fmt::format("/proc/{}/task/{}/stat", pid_, tid));
    if (!stat) return TaskState::kUnknown;
    char state = stateLetter(*stat);
    if (state == '?') return TaskState::kUnknown;
    return state == 'R' ? TaskState::kRunning : TaskState::kIdle;
}

bool ProcessInfo::alive() const {
    auto stat = readProcFile(procPath(pid_, "stat"));
    if (!stat) return false;
    char state = stateLetter(*stat);
    return state != 'Z' && state != 'X';
}

}  // namespace vigil
