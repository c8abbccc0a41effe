// `vigil top PID`: a live view of where a process spends its time, like
// Unix top: functions by own and total share of the samples, refreshed every
// interval. With a terminal it is an ncurses screen with keys; without one
// it prints a plain table each interval.
#include <curses.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/recording.h"
#include "core/errors.h"
#include "core/function_stats.h"
#include "core/recorder.h"

namespace vigil::cli {
namespace {

struct TopOptions {
    pid_t pid = 0;
    double rate = 100;
    double interval = 1;
    double duration = 0;
    bool idle = false;
    bool gil = false;
    size_t rows = 25;
};

enum class SortBy { kOwnShare, kTotalShare, kOwnTime, kTotalTime };

struct Row {
    std::string function;
    double ownShare = 0, totalShare = 0;      // of the last interval's samples, in %
    double ownSeconds = 0, totalSeconds = 0;  // since the start
};

// Turns the cumulative profile into rows: shares over the last interval,
// times since the start.
class TopTable {
  public:
    TopTable(const Profile& profile, double rateHz) : profile_(profile), period_(1.0 / rateHz) {}

    void refresh() {
        FunctionTable now = functionCounts(profile_);
        uint64_t samples = profile_.totalSamples() - previousSamples_;
        rows_.clear();
        for (const auto& [key, counts] : now) {
            FunctionCounts before = previous_.count(key) ? previous_[key] : FunctionCounts{};
            Row row;
            row.function = fmt::format("{} ({})", profile_.strings().get(key.name),
                                       profile_.strings().get(key.file));
            row.ownShare = samples ? 100.0 * (counts.own - before.own) / samples : 0;
            row.totalShare = samples ? 100.0 * (counts.total - before.total) / samples : 0;
            row.ownSeconds = counts.own * period_;
            row.totalSeconds = counts.total * period_;
            rows_.push_back(std::move(row));
        }
        previous_ = std::move(now);
        previousSamples_ = profile_.totalSamples();
        intervalSamples_ = samples;
    }

    const std::vector<Row>& sorted(SortBy by) {
        auto value = [by](const Row& row) {
            switch (by) {
                case SortBy::kOwnShare:
                    return std::make_pair(row.ownShare, row.ownSeconds);
                case SortBy::kTotalShare:
                    return std::make_pair(row.totalShare, row.totalSeconds);
                case SortBy::kOwnTime:
                    return std::make_pair(row.ownSeconds, row.ownShare);
                default:
                    return std::make_pair(row.totalSeconds, row.totalShare);
            }
        };
        std::stable_sort(rows_.begin(), rows_.end(),
                         [&](const Row& a, const Row& b) { return value(a) > value(b); });
        return rows_;
    }
    uint64_t intervalSamples() const { return intervalSamples_; }

  private:
    const Profile& profile_;
    double period_;
    FunctionTable previous_;
    uint64_t previousSamples_ = 0;
    uint64_t intervalSamples_ = 0;
    std::vector<Row> rows_;
};

// What the header says, gathered from the rounds of one interval.
struct IntervalState {
    int threads = 0, running = 0;
    uint64_t rounds = 0, gilRounds = 0;
    void add(const RoundInfo& round) {
        threads = round.summary.threads;
        running = round.summary.running;
        ++rounds;
        gilRounds += round.summary.gilHeld;
    }
    double gilShare() const { return rounds ? 100.0 * gilRounds / rounds : 0; }
};

std::string headerLine(const IntervalState& state, const RecordingStats& stats) {
    return fmt::format(
        "Threads: {} ({} running)   GIL held: {:.0f}%   Samples: {} ({:.1f} Hz, {:.2f}% invalid)",
        state.threads, state.running, state.gilShare(), stats.samples, stats.achievedHz(),
        stats.invalidPercent());
}

std::string titleLine(const PythonProcess& process) {
    return fmt::format("vigil top: pid {} ({}), Python {}", process.info().pid(),
                       process.info().commandLine(), process.layout().version.str());
}

std::string rowLine(const Row& row) {
    return fmt::format("{:6.1f}% {:6.1f}% {:9.2f}s {:9.2f}s  {}", row.ownShare, row.totalShare,
                       row.ownSeconds, row.totalSeconds, row.function);
}

constexpr const char* kColumns = "  %Own  %Total   OwnTime TotalTime  Function (file)";

void printPlain(const std::string& title, const std::string& header, const std::vector<Row>& rows,
                size_t limit) {
    fmt::print("{}\n{}\n{}\n", title, header, kColumns);
    for (size_t i = 0; i < rows.size() && i < limit; ++i) fmt::print("{}\n", rowLine(rows[i]));
    fmt::print("\n");
    std::fflush(stdout);
}

class Screen {
  public:
    Screen() {
        initscr();
        cbreak();
        noecho();
        nodelay(stdscr, TRUE);
        keypad(stdscr, TRUE);
        curs_set(0);
    }
    ~Screen() { endwin(); }

    enum class Keys { kNone, kChanged, kQuit };

    // Handles the keys pressed since the last call.
    Keys keys(SortBy& sort, bool& paused) {
        Keys result = Keys::kNone;
        for (int key = getch(); key != ERR; key = getch()) {
            if (key == 'q' || key == 'Q') return Keys::kQuit;
            if (key == 'p' || key == 'P' || key == ' ') {
                paused = !paused;
                result = Keys::kChanged;
            }
            if (key >= '1' && key <= '4') {
                sort = static_cast<SortBy>(key - '1');
                result = Keys::kChanged;
            }
        }
        return result;
    }

    void draw(const std::string& title, const std::string& header, const std::vector<Row>& rows,
              SortBy sort, bool paused) {
        erase();
        mvaddnstr(0, 0, title.c_str(), COLS);
        mvaddnstr(1, 0, header.c_str(), COLS);
        std::string keys = fmt::format(
            "Sort: 1 %Own  2 %Total  3 OwnTime  4 TotalTime (now {})   p pause{}   q quit",
            static_cast<int>(sort) + 1, paused ? " [PAUSED]" : "");
        mvaddnstr(2, 0, keys.c_str(), COLS);
        attron(A_REVERSE);
        mvaddnstr(4, 0, fmt::format("{:<{}}", kColumns, COLS).c_str(), COLS);
        attroff(A_REVERSE);
        for (size_t i = 0; i < rows.size() && static_cast<int>(i) + 5 < LINES; ++i) {
            mvaddnstr(static_cast<int>(i) + 5, 0, rowLine(rows[i]).c_str(), COLS);
        }
        refresh();
    }
};

int runTop(const TopOptions& options, const Verbosity& verbosity) {
    validateRate(options.rate);
    if (options.interval <= 0) throw UsageError("--interval must be positive (seconds)");
    StringTable strings;
    Profile profile(strings);
    RecorderOptions recorderOptions;
    recorderOptions.rateHz = options.rate;
    recorderOptions.durationSeconds = options.duration;
    recorderOptions.sampler = {options.idle, options.gil, false, false, true};
    Recorder recorder(profile, recorderOptions,
                      [&](std::string_view message) { verbosity.say(message); });
    recorder.attach(options.pid);
    StopSignals signals;
    std::atomic<bool> quit{false};
    bool interactive = ::isatty(STDOUT_FILENO) && ::isatty(STDIN_FILENO);
    std::unique_ptr<Screen> screen = interactive ? std::make_unique<Screen>() : nullptr;
    TopTable table(profile, options.rate);
    IntervalState state;
    SortBy sort = SortBy::kOwnShare;
    bool paused = false;
    int64_t nextRefresh = static_cast<int64_t>(options.interval * 1e9);
    std::string title = titleLine(recorder.firstProcess());
    std::atomic<bool> stop{false};
    std::string header = "Collecting samples...";
    recorder.run(stop, [&](const RoundInfo& round) {
        state.add(round);
        Screen::Keys keys = screen ? screen->keys(sort, paused) : Screen::Keys::kNone;
        if (signals.stop().load() || keys == Screen::Keys::kQuit) stop.store(true);
        // A key shows its effect at once, on the table last drawn.
        if (keys == Screen::Keys::kChanged)
            screen->draw(title, header, table.sorted(sort), sort, paused);
        if (round.elapsedNs < nextRefresh) return;
        nextRefresh += static_cast<int64_t>(options.interval * 1e9);
        if (paused) return;
        table.refresh();
        header = headerLine(state, profile.stats);
        state = {};
        if (!screen) return printPlain(title, header, table.sorted(sort), options.rows);
        screen->draw(title, header, table.sorted(sort), sort, paused);
    });
    screen.reset();
    sayEndedProcesses(recorder);
    return 0;
}

}  // namespace

Command addTopCommand(CLI::App& app, const Verbosity& verbosity) {
    auto options = std::make_shared<TopOptions>();
    CLI::App* top =
        app.add_subcommand("top", "Live view of the functions a process spends its time in");
    top->add_option("pid", options->pid, "Process to watch")->required();
    top->add_option("-r,--rate", options->rate, "Samples per second (1 to 100000)");
    top->add_option("-i,--interval", options->interval, "Seconds between refreshes");
    top->add_option("-d,--duration", options->duration,
                    "Stop after this many seconds (default: q or Ctrl-C)");
    top->add_option("-n,--rows", options->rows, "Rows printed per interval without a terminal");
    top->add_flag("--idle", options->idle, "Count idle threads too (default: only running ones)");
    top->add_flag("--gil", options->gil, "Count only the thread holding the GIL");
    return {top, [options, &verbosity] { return runTop(*options, verbosity); }};
}

}  // namespace vigil::cli
