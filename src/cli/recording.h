// Pieces shared by the commands that sample (record, top): signal handling,
// the output file, the live status line and the format dispatch.
#pragma once

#include <atomic>
#include <functional>
#include <ostream>
#include <string>

#include "core/profile.h"
#include "core/recorder.h"
#include "output/profile_writers.h"

namespace vigil::cli {

// Throws UsageError for a rate of zero, negative or absurd.
void validateRate(double rateHz);

// SIGINT and SIGTERM set stop() instead of killing vigil while it records;
// the previous handlers come back when this goes.
class StopSignals {
  public:
    StopSignals();
    ~StopSignals();
    const std::atomic<bool>& stop() const;
};

// The output file is created (as a temporary beside it) before recording
// starts, so an unwritable path fails at once; write() fills it and renames
// it into place, so a failed write never leaves half a file.
class OutputFile {
  public:
    explicit OutputFile(const std::string& path);
    ~OutputFile();
    void write(const std::function<void(std::ostream&)>& fill);

  private:
    std::string path_;
    std::string temporary_;
    int fd_ = -1;
};

// One live line on stderr, redrawn at most four times a second; nothing when
// stderr is not a terminal.
class StatusLine {
  public:
    explicit StatusLine(std::string target);
    void update(const RoundInfo& round, const RecordingStats& stats);
    void clear();

  private:
    std::string target_;
    bool enabled_;
    int64_t lastDrawNs_ = -1;
};

// One line on stderr for each process that ended or stopped being sampled.
void sayEndedProcesses(const Recorder& recorder);

void writeProfile(const Profile& profile, const std::string& format,
                  const ProfileMetadata& metadata, std::ostream& out);

}  // namespace vigil::cli
