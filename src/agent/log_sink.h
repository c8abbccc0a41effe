// Where the agent's JSON lines go: a file, and stdlib logging.
//
// Lines are written by the agent's native threads, never by the
// application's. The file gets each line in one write() to an O_APPEND
// descriptor, so lines of many threads and processes sharing one file never
// interleave. stdlib logging needs the GIL, which a stuck request may hold
// for ever: those lines wait in a bounded queue that a Python thread of the
// agent drains, and the file still gets them at once.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include "core/agent_state.h"

namespace vigil::agent {

enum class LogLevel { kInfo = 20, kWarning = 30 };

struct LogLine {
    LogLevel level;
    std::string text;  // one JSON object, no newline
};

class LogSink {
  public:
    // Counts what it writes and drops into written and dropped.
    struct Counters {
        std::atomic<uint64_t>& written;
        std::atomic<uint64_t>& dropped;
    };
    // path "" writes no file; logger false queues nothing for stdlib logging;
    // label names the file in messages ("agent log", "request log").
    LogSink(std::string label, std::string path, bool toLogger, Counters counters);
    ~LogSink();
    LogSink(const LogSink&) = delete;
    LogSink& operator=(const LogSink&) = delete;

    void write(LogLevel level, const std::string& line);
    // The next line for stdlib logging: waits up to timeoutMs; nullopt on
    // timeout or once closed.
    std::optional<LogLine> nextForLogger(int timeoutMs);
    // Wakes every waiter of nextForLogger for good.
    void close();
    // Closed and nothing left for stdlib logging.
    bool drained();
    // Opens the file again at its next line (after logrotate moved it).
    void reopen();

    static constexpr size_t kQueueCapacity = 1024;

  private:
    void writeFile(const std::string& line);
    void reportFailure(int error);

    std::string label_;
    std::string path_;
    int fd_ = -1;
    bool failing_ = false;  // reported once per failure streak
    uint64_t droppedWhileFailing_ = 0;
    bool toLogger_;
    Counters counters_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<LogLine> queue_;
    bool closed_ = false;
};

}  // namespace vigil::agent
