// What /proc says about a process: its mappings, threads and their states.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vigil {

struct MemoryMap {
    uint64_t start = 0;
    uint64_t end = 0;
    uint64_t fileOffset = 0;
    bool readable = false;
    bool writable = false;
    bool executable = false;
    std::string path;  // empty for anonymous mappings

    bool contains(uint64_t address) const { return address >= start && address < end; }
};

// One line of /proc/PID/maps; nullopt when the line is malformed.
std::optional<MemoryMap> parseMapsLine(const std::string& line);

enum class TaskState { kRunning, kIdle, kUnknown };

class ProcessInfo {
  public:
    // Throws NoSuchProcessError or PermissionError.
    explicit ProcessInfo(pid_t pid);

    pid_t pid() const { return pid_; }
    const std::vector<MemoryMap>& maps() const { return maps_; }
    // Path of the executable as the process sees it.
    const std::string& executable() const { return executable_; }
    // The command line, arguments joined by spaces.
    const std::string& commandLine() const { return commandLine_; }

    // A path of the target's file system reachable from here (through
    // /proc/PID/root, so files inside containers are found too).
    std::string hostPath(const std::string& path) const;

    // Native thread ids, from /proc/PID/task.
    std::vector<pid_t> threadIds() const;

    // 'R' in /proc/PID/task/TID/stat is running; anything else is idle.
    TaskState taskState(pid_t tid) const;

    // True while /proc/PID exists and is not a zombie.
    bool alive() const;

  private:
    void readMaps();

    pid_t pid_;
    std::vector<MemoryMap> maps_;
    std::string executable_;
    std::string commandLine_;
};

}  // namespace vigil
