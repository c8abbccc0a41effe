// `vigil replay`'s commands, shared by the screen (keys) and the command
// mode (lines): one trace, the cursor over it, the breakpoints, and what a
// stop shows. docs/replay.md lists the commands.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trace/breakpoints.h"
#include "trace/replay_cursor.h"
#include "trace/replay_time.h"
#include "trace/replay_timeline.h"
#include "trace/trace_reader.h"

namespace vigil::cli {

struct ReplayFrame {
    std::string function;  // "-" outside recorded code
    std::string file;      // "-" likewise
    uint32_t line = 0;
};

// What the replay stands on: the event, its thread and frames, and the
// source of the frame shown.
struct ReplayStop {
    TraceEvent event;
    ReplayFrame at;          // the frame the event happens in
    size_t threadIndex = 0;  // from 1, of threadCount, by serial
    size_t threadCount = 0;
    int64_t wallNs = 0;
    std::vector<ReplayFrame> stack;  // innermost first
    size_t frame = 0;                // the one shown
    // The shown frame's file as recorded; nullopt when it was not kept.
    std::optional<std::string> source;
    // The shown frame's line in `source`; nullopt when there is none.
    std::optional<std::string> sourceLine() const;
    const ReplayFrame& shown() const { return stack.empty() ? at : stack[frame]; }
};

struct ReplayOutcome {
    bool moved = false;  // a new stop to show
    bool quit = false;
    std::vector<std::string> notes;
    std::string error;  // a command that could not be read or done

    static ReplayOutcome saying(std::vector<std::string> notes) {
        ReplayOutcome outcome;
        outcome.notes = std::move(notes);
        return outcome;
    }
};

class ReplaySession {
  public:
    // A process directory. Throws BadFileError when it holds no event; a
    // bad block is kept in reader().error() and what is before it replays.
    explicit ReplaySession(const std::string& dir);

    // One command line: "n", "b flow.py:42", "j +2s"...
    ReplayOutcome execute(std::string_view line);
    ReplayStop stop();

    const TraceReader& reader() const { return *reader_; }
    ReplayTimeline& timeline() { return *timeline_; }
    const TraceClock& clock() const { return clock_; }
    // The recorded function and file of a code id, "-" for unknown ones.
    ReplayFrame frameOf(uint32_t code, uint32_t line) const;

  private:
    ReplayOutcome move(std::string_view command, std::string_view argument);
    ReplayOutcome breakpoint(std::string_view argument);
    ReplayOutcome clearBreakpoints(std::string_view argument);
    ReplayOutcome reload();
    bool anyFileMatches(const std::string& file) const;

    std::unique_ptr<TraceReader> reader_;
    std::unique_ptr<ReplayTimeline> timeline_;
    std::unique_ptr<ReplayCursor> cursor_;
    TraceClock clock_;
    Breakpoints breakpoints_;
};

// The help: one line per command.
const std::vector<std::string>& replayHelp();

// The lines of a text, without their '\n'.
std::vector<std::string_view> splitLines(std::string_view text);

}  // namespace vigil::cli
