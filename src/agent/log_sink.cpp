#include "agent/log_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace vigil::agent {

LogSink::LogSink(std::string label, std::string path, bool toLogger, Counters counters)
    : label_(std::move(label)), path_(std::move(path)), toLogger_(toLogger), counters_(counters) {}

LogSink::~LogSink() {
    if (fd_ >= 0) ::close(fd_);
}

void LogSink::write(LogLevel level, const std::string& line) {
    if (!path_.empty()) writeFile(line);
    if (!toLogger_) return;
    std::lock_guard lock(mutex_);
    if (closed_) return;
    if (queue_.size() >= kQueueCapacity) {
        counters_.dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    queue_.push_back({level, line});
    ready_.notify_one();
}

void LogSink::writeFile(const std::string& line) {
    if (fd_ < 0) fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    std::string text = line + '\n';
    // One write per line: O_APPEND makes it land whole at the end, even
    // when other processes append to the same file.
    ssize_t written = fd_ < 0 ? -1 : ::write(fd_, text.data(), text.size());
    if (written == static_cast<ssize_t>(text.size())) {
        counters_.written.fetch_add(1, std::memory_order_relaxed);
        if (failing_) {
            fmt::print(stderr, "vigil: the {} {} works again ({} lines were dropped)\n", label_,
                       path_, droppedWhileFailing_);
            failing_ = false;
        }
        return;
    }
    int error = written < 0 ? errno : ENOSPC;  // a short write: the disk filled up
    counters_.dropped.fetch_add(1, std::memory_order_relaxed);
    reportFailure(error);
    if (fd_ >= 0 && written < 0 && error != ENOSPC) {
        ::close(fd_);  // opened again next time: the path may be fixed meanwhile
        fd_ = -1;
    }
}

void LogSink::reportFailure(int error) {
    ++droppedWhileFailing_;
    if (failing_) return;
    failing_ = true;
    droppedWhileFailing_ = 1;
    fmt::print(stderr,
               "vigil: cannot write the {} {}: {}; its lines are dropped and counted "
               "until it works again\n",
               label_, path_, std::strerror(error));
}

std::optional<LogLine> LogSink::nextForLogger(int timeoutMs) {
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                    [this] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return std::nullopt;
    LogLine line = std::move(queue_.front());
    queue_.pop_front();
    return line;
}

void LogSink::reopen() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

bool LogSink::drained() {
    std::lock_guard lock(mutex_);
    return closed_ && queue_.empty();
}

void LogSink::close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    ready_.notify_all();
}

}  // namespace vigil::agent
