// `vigil replay DIR`: a debugger over an execution trace (docs/replay.md).
// On a terminal it is an ncurses screen driven by keys; otherwise (or with
// --commands FILE, or --json) it reads the same commands one per line and
// prints each stop as a block of `key: value` lines or a JSON object.
// --events prints every event in order, one line each.
#include <curses.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/replay_session.h"
#include "core/errors.h"
#include "trace/process_dir.h"

namespace vigil::cli {
namespace {

struct ReplayOptions {
    std::string dir;
    std::string commands;  // a file of commands; "" reads them from stdin
    bool json = false;
    bool events = false;
};

// --- Events and stops as text and JSON ---

std::string eventLine(const TraceEvent& event, const ReplayFrame& frame, const TraceClock& clock) {
    return fmt::format("{} {} {} {} {} {} {}:{}", isoLocalTime(clock.wallNs(event.estimatedTimeNs)),
                       event.thread, event.task, traceEventKindName(event.kind), event.depth,
                       frame.function, frame.file, frame.line);
}

nlohmann::json eventJson(const TraceEvent& event, const ReplayFrame& frame,
                         const TraceClock& clock) {
    int64_t wallNs = clock.wallNs(event.estimatedTimeNs);
    auto unknownAsNull = [](const std::string& text) {
        return text == "-" ? nlohmann::json(nullptr) : nlohmann::json(text);
    };
    return {{"event", traceEventKindName(event.kind)},
            {"thread", event.thread},
            {"task", event.task},
            {"time", isoLocalTime(wallNs)},
            {"time_ns", wallNs},
            {"monotonic_ns", event.estimatedTimeNs},
            {"precise", event.precise},
            {"function", unknownAsNull(frame.function)},
            {"file", unknownAsNull(frame.file)},
            {"line", event.line},
            {"depth", event.depth}};
}

std::string stopText(const ReplayStop& stop, size_t number, std::string_view command) {
    const TraceEvent& event = stop.event;
    std::string text = fmt::format(
        "stop {}: {}\nevent: {}\nthread: {}\ntask: {}\ntime: {}\ntime_ns: {}\nmonotonic_ns: "
        "{}\nfunction: {}\nfile: {}\nline: {}\ndepth: {}\nframe: {}\nsource: {}\nstack:\n",
        number, command, traceEventKindName(event.kind), event.thread, event.task,
        isoLocalTime(stop.wallNs), stop.wallNs, event.estimatedTimeNs, stop.at.function,
        stop.at.file, event.line, event.depth, stop.frame, stop.sourceLine().value_or("-"));
    for (size_t i = 0; i < stop.stack.size(); ++i) {
        const ReplayFrame& frame = stop.stack[i];
        text += fmt::format("{} #{} {} {}:{}\n", i == stop.frame ? '>' : ' ', i, frame.function,
                            frame.file, frame.line);
    }
    return text + "\n";
}

nlohmann::json stopJson(const ReplayStop& stop, size_t number, std::string_view command,
                        const TraceClock& clock) {
    nlohmann::json json = eventJson(stop.event, stop.at, clock);
    json["stop"] = number;
    json["command"] = command;
    json["frame"] = stop.frame;
    std::optional<std::string> line = stop.sourceLine();
    json["source"] = line ? nlohmann::json(*line) : nlohmann::json(nullptr);
    json["stack"] = nlohmann::json::array();
    for (const ReplayFrame& frame : stop.stack)
        json["stack"].push_back(
            {{"function", frame.function}, {"file", frame.file}, {"line", frame.line}});
    return json;
}

// Every event of the trace in order, written in pieces of some 64 KiB.
void printEvents(ReplaySession& session, bool json) {
    MergedWalk walk(session.timeline(), std::nullopt, Direction::kForward);
    std::string out;
    for (std::optional<ReplayPlace> place = walk.next(); place; place = walk.next()) {
        const TraceEvent& event = walk.event();
        ReplayFrame frame = session.frameOf(event.code, event.line);
        out += json ? eventJson(event, frame, session.clock()).dump()
                    : eventLine(event, frame, session.clock());
        out += '\n';
        if (out.size() >= 65536) {
            writeStdout(out);
            out.clear();
        }
    }
    writeStdout(out);
}

// --- Command mode ---

// Reads commands until the input ends or q; returns 0, or 2 when a
// command could not be read or done (each one said so where it was).
int runCommands(ReplaySession& session, std::istream& input, bool json) {
    size_t stops = 0;
    bool failed = false;
    auto printStop = [&](std::string_view command) {
        ReplayStop stop = session.stop();
        writeStdout(json ? stopJson(stop, stops, command, session.clock()).dump() + "\n"
                         : stopText(stop, stops, command));
        ++stops;
    };
    auto say = [&](std::string_view kind, const std::string& text, std::string_view command) {
        writeStdout(json ? nlohmann::json{{kind, text}, {"command", command}}.dump() + "\n"
                         : fmt::format("{}: {}\n", kind, text));
    };
    printStop("start");
    for (std::string line; std::getline(input, line);) {
        std::string_view command = line;
        command.remove_prefix(std::min(command.find_first_not_of(" \t"), command.size()));
        if (command.empty() || command.starts_with('#')) continue;  // blank lines, comments
        ReplayOutcome outcome = session.execute(command);
        for (const std::string& note : outcome.notes) say("note", note, command);
        if (!outcome.error.empty()) {
            say("error", outcome.error, command);
            failed = true;
        }
        if (outcome.moved) printStop(command);
        if (outcome.quit) break;
    }
    return failed ? static_cast<int>(ExitCode::kUsage) : 0;
}

// --- The screen ---

class ReplayScreen {
  public:
    explicit ReplayScreen(ReplaySession& session) : session_(session) {
        initscr();
        cbreak();
        noecho();
        keypad(stdscr, TRUE);
        curs_set(0);
    }
    ~ReplayScreen() { endwin(); }
    ReplayScreen(const ReplayScreen&) = delete;
    ReplayScreen& operator=(const ReplayScreen&) = delete;

    void run(std::vector<std::string> messages) {
        while (true) {
            draw(session_.stop(), messages);
            std::optional<std::string> command = commandOfKey(getch());
            if (!command) continue;
            ReplayOutcome outcome = session_.execute(*command);
            if (outcome.quit) return;
            messages = std::move(outcome.notes);
            if (!outcome.error.empty()) messages.push_back("error: " + outcome.error);
        }
    }

  private:
    // The command a key stands for; keys that take an argument prompt for it.
    std::optional<std::string> commandOfKey(int key) {
        switch (key) {
            case 'b':
            case 'j':
            case 'f':
            case 'F': {
                std::string label = fmt::format("{} ", static_cast<char>(key));
                return label + prompt(label);
            }
            case ':':
                return prompt(":");
            case KEY_UP:
                return "u";
            case KEY_DOWN:
                return "d";
            default:
                if (key > 0 && key < 128 &&
                    std::string_view("nNsScCudtghq").find(key) != std::string_view::npos)
                    return std::string(1, static_cast<char>(key));
                return std::nullopt;  // a resize, or a key with no meaning: redraw
        }
    }

    std::string prompt(const std::string& label) {
        mvaddnstr(LINES - 1, 0, label.c_str(), COLS);
        clrtoeol();
        echo();
        curs_set(1);
        char buffer[256] = {};
        getnstr(buffer, sizeof(buffer) - 1);
        noecho();
        curs_set(0);
        return buffer;
    }

    void line(int row, const std::string& text, int attributes = A_NORMAL) {
        attron(attributes);
        mvaddnstr(row, 0, fmt::format("{:<{}}", text, COLS).c_str(), COLS);
        attroff(attributes);
    }

    void draw(const ReplayStop& stop, const std::vector<std::string>& messages) {
        erase();
        const TraceReader& reader = session_.reader();
        line(0, fmt::format("vigil replay: {} (pid {}{})", reader.meta().processName,
                            reader.meta().pid, reader.live() ? ", still running: g reloads" : ""));
        line(1,
             fmt::format("thread {} ({} of {})  task {}  {} ({} from the start)  {} {} depth {}",
                         stop.event.thread, stop.threadIndex, stop.threadCount, stop.event.task,
                         timeOfDay(stop.wallNs),
                         secondsText(stop.event.estimatedTimeNs - reader.meta().startMonotonicNs),
                         traceEventKindName(stop.event.kind), stop.at.function, stop.event.depth),
             A_REVERSE);
        int stackRows = std::min<int>(static_cast<int>(stop.stack.size()), 8);
        int sourceRows = LINES - 6 - std::max(stackRows, 1);
        // Several lines (the help, the breakpoints) take the source's place.
        if (messages.size() > 1) {
            for (int i = 0; i < sourceRows && i < static_cast<int>(messages.size()); ++i)
                line(2 + i, messages[i]);
        } else {
            drawSource(stop, 2, sourceRows);
        }
        drawStack(stop, 3 + sourceRows, stackRows);
        if (messages.size() == 1) line(LINES - 2, messages.front(), A_BOLD);
        line(LINES - 1,
             "n/s/c next/step/continue (N/S/C back)  u/d frame  b break  j jump  t thread  f find  "
             "g reload  h help  q quit",
             A_REVERSE);
        refresh();
    }

    void drawSource(const ReplayStop& stop, int top, int rows) {
        const ReplayFrame& frame = stop.shown();
        line(top, fmt::format("--- {}:{} ---", frame.file, frame.line), A_BOLD);
        if (!stop.source) {
            line(top + 1, frame.file == "-" ? "(outside the recorded code: no source)"
                                            : "(the source of this file was not kept with the "
                                              "trace)");
            return;
        }
        std::vector<std::string_view> lines = splitLines(*stop.source);
        int first = std::max<int>(1, static_cast<int>(frame.line) - (rows - 1) / 2);
        for (int row = 1; row < rows && first + row - 1 <= static_cast<int>(lines.size()); ++row) {
            int number = first + row - 1;
            bool current = number == static_cast<int>(frame.line);
            line(top + row,
                 fmt::format("{} {:5}  {}", current ? '>' : ' ', number, lines[number - 1]),
                 current ? A_REVERSE : A_NORMAL);
        }
    }

    void drawStack(const ReplayStop& stop, int top, int rows) {
        line(top, "--- stack (u/d) ---", A_BOLD);
        if (stop.stack.empty()) line(top + 1, "(outside the recorded code)");
        for (int i = 0; i < rows; ++i) {
            const ReplayFrame& frame = stop.stack[i];
            line(top + 1 + i,
                 fmt::format("{} #{} {} {}:{}", i == static_cast<int>(stop.frame) ? '>' : ' ', i,
                             frame.function, frame.file, frame.line),
                 i == static_cast<int>(stop.frame) ? A_BOLD : A_NORMAL);
        }
    }

    ReplaySession& session_;
};

int runReplay(const ReplayOptions& options) {
    ReplaySession session(findProcessDir(options.dir));
    std::vector<std::string> messages;
    if (const auto& error = session.reader().error()) {
        messages.push_back(fmt::format("warning: {}: replaying those", error->what()));
        fmt::print(stderr, "vigil: {}\n", messages.back());
    }
    int status = 0;
    bool terminal = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
    if (options.events) {
        printEvents(session, options.json);
    } else if (!options.commands.empty()) {
        std::ifstream file(options.commands);
        if (!file) throw BadFileError(fmt::format("cannot read {}", options.commands));
        status = runCommands(session, file, options.json);
    } else if (!terminal || options.json) {
        status = runCommands(session, std::cin, options.json);
    } else {
        ReplayScreen(session).run(std::move(messages));
    }
    // A partial replay is not a success: scripts see the trace was damaged.
    return session.reader().error() ? static_cast<int>(ExitCode::kBadFile) : status;
}

}  // namespace

Command addReplayCommand(CLI::App& app, const Verbosity&) {
    auto options = std::make_shared<ReplayOptions>();
    CLI::App* replay =
        app.add_subcommand("replay", "Step through an execution trace like a debugger");
    replay
        ->add_option("dir", options->dir,
                     "The trace: a process directory, or a base directory whose latest run "
                     "holds one process")
        ->required();
    replay->add_option("--commands", options->commands,
                       "Read commands from this file (one per line) instead of the keyboard");
    replay->add_flag("--json", options->json, "Print each stop (or event) as one JSON object");
    replay->add_flag("--events", options->events, "Print every event in order, one per line");
    return {replay, [options] { return runReplay(*options); }};
}

}  // namespace vigil::cli
