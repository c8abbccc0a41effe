#include "cli/recording.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.h"
#include "output/flamegraph_html.h"
#include "output/pprof_writer.h"

namespace vigil::cli {
namespace {

constexpr double kMaxRateHz = 100000;

std::atomic<bool> stopRequested{false};
struct sigaction previousInt, previousTerm;

void requestStop(int) {
    stopRequested.store(true);
}

bool writeAll(int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t wrote = ::write(fd, data.data() + done, data.size() - done);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) return false;
        done += wrote;
    }
    return true;
}

}  // namespace

void validateRate(double rateHz) {
    if (!(rateHz >= 1 && rateHz <= kMaxRateHz)) {
        throw UsageError(fmt::format(
            "--rate {:g} is out of range: give 1 to {:g} samples per second", rateHz, kMaxRateHz));
    }
}

StopSignals::StopSignals() {
    stopRequested.store(false);
    struct sigaction action {};
    action.sa_handler = requestStop;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the sampler's sleep ends at once
    sigaction(SIGINT, &action, &previousInt);
    sigaction(SIGTERM, &action, &previousTerm);
}

StopSignals::~StopSignals() {
    sigaction(SIGINT, &previousInt, nullptr);
    sigaction(SIGTERM, &previousTerm, nullptr);
}

const std::atomic<bool>& StopSignals::stop() const {
    return stopRequested;
}

OutputFile::OutputFile(const std::string& path) : path_(path), temporary_(path + ".vigil-partial") {
    fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        throw OutputError(fmt::format("cannot write {}: {} (choose another path with -o)", path,
                                      std::strerror(errno)));
    }
}

OutputFile::~OutputFile() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(temporary_.c_str());
    }
}

void OutputFile::write(const std::function<void(std::ostream&)>& fill) {
    std::ostringstream buffer;
    fill(buffer);
    bool ok = writeAll(fd_, buffer.str()) && ::fsync(fd_) == 0;
    int error = errno;
    ok = ::close(fd_) == 0 && ok;
    fd_ = -1;
    if (!ok || ::rename(temporary_.c_str(), path_.c_str()) != 0) {
        ::unlink(temporary_.c_str());
        throw OutputError(fmt::format("cannot write {}: {} (is the disk full?)", path_,
                                      std::strerror(ok ? errno : error)));
    }
}

StatusLine::StatusLine(std::string target)
    : target_(std::move(target)), enabled_(::isatty(STDERR_FILENO)) {}

void StatusLine::update(const RoundInfo& round, const RecordingStats& stats) {
    if (!enabled_ || (lastDrawNs_ >= 0 && round.elapsedNs - lastDrawNs_ < 250'000'000)) return;
    lastDrawNs_ = round.elapsedNs;
    fmt::print(stderr, "\r\033[Kvigil: recording {}: {:.1f} s, {} samples, {:.1f} Hz", target_,
               round.elapsedNs / 1e9, stats.samples, stats.achievedHz());
    std::fflush(stderr);
}

void StatusLine::clear() {
    if (enabled_) fmt::print(stderr, "\r\033[K");
}

void sayEndedProcesses(const Recorder& recorder) {
    for (const std::string& ended : recorder.endedProcesses())
        fmt::print(stderr, "vigil: {}\n", ended);
}

void writeProfile(const Profile& profile, const std::string& format,
                  const ProfileMetadata& metadata, std::ostream& out) {
    if (format == "folded") return writeFolded(profile, out);
    if (format == "speedscope") return writeSpeedscope(profile, metadata, out);
    if (format == "chrome") return writeChromeTrace(profile, metadata, out);
    if (format == "pprof") return writePprof(profile, out);
    const RecordingStats& stats = profile.stats;
    FlameGraphOptions options{
        metadata.name,
        fmt::format("{:g} Hz · {} samples · {:.2f}% invalid · {:.1f} s", stats.requestedHz,
                    stats.samples, stats.invalidPercent(), stats.durationSeconds)};
    writeFlameGraphHtml(profile, options, out);
}

}  // namespace vigil::cli
