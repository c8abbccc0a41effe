#include "cli/replay_session.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil::cli {
namespace {

enum class Argument { kNone, kOptional, kRequired };

struct CommandSpec {
    std::string_view name;
    Argument argument;
};

constexpr CommandSpec kCommands[] = {
    {"n", Argument::kNone},      {"N", Argument::kNone},     {"s", Argument::kNone},
    {"S", Argument::kNone},      {"c", Argument::kNone},     {"C", Argument::kNone},
    {"u", Argument::kNone},      {"d", Argument::kNone},     {"b", Argument::kOptional},
    {"cl", Argument::kOptional}, {"j", Argument::kRequired}, {"t", Argument::kOptional},
    {"f", Argument::kRequired},  {"F", Argument::kRequired}, {"g", Argument::kNone},
    {"h", Argument::kNone},      {"q", Argument::kNone},
};

std::string_view trim(std::string_view text) {
    size_t first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

// The command's argument is checked against its spec; throws UsageError.
void checkArgument(std::string_view command, std::string_view argument) {
    auto spec = std::find_if(std::begin(kCommands), std::end(kCommands),
                             [&](const CommandSpec& spec) { return spec.name == command; });
    if (spec == std::end(kCommands))
        throw UsageError(fmt::format("unknown command \"{}\" (h lists the commands)", command));
    if (spec->argument == Argument::kNone && !argument.empty())
        throw UsageError(fmt::format("{} takes no argument", command));
    if (spec->argument == Argument::kRequired && argument.empty())
        throw UsageError(fmt::format("{} needs an argument (h lists the commands)", command));
}

int32_t threadId(std::string_view text) {
    int32_t id = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (error != std::errc() || end != text.data() + text.size())
        throw UsageError(fmt::format("t {}: expected a native thread id", text));
    return id;
}

uint64_t eventCount(const TraceReader& reader) {
    uint64_t count = 0;
    for (const TraceBlock& block : reader.blocks()) count += block.events;
    return count;
}

}  // namespace

std::vector<std::string_view> splitLines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        size_t end = text.find('\n');
        lines.push_back(text.substr(0, end));
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    }
    return lines;
}

std::optional<std::string> ReplayStop::sourceLine() const {
    if (!source) return std::nullopt;
    std::vector<std::string_view> lines = splitLines(*source);
    uint32_t line = shown().line;
    if (line == 0 || line > lines.size()) return std::nullopt;
    return std::string(lines[line - 1]);
}

const std::vector<std::string>& replayHelp() {
    static const std::vector<std::string> help = {
        "n / N        next event of this thread in this frame or a caller (over calls) / back",
        "s / S        next event of this thread, into calls / back",
        "c / C        continue to the next breakpoint hit, in any thread / back",
        "u / d        up to the caller's frame / back down",
        "b [LINE|FILE:LINE]  set a breakpoint (in the file shown); b alone lists them",
        "cl [ID]      clear breakpoint ID; cl alone clears them all",
        "j TIME       jump: 12:00:16.55, 2025-03-14 12:00:16.55, +2s, -300ms, +1h",
        "t [TID]      switch to the next thread (or thread TID), at its event nearest now",
        "f / F NAME   next / previous call of a function (Worker.run, or run)",
        "g            reload: take the events recorded since",
        "h            this help",
        "q            quit",
    };
    return help;
}

ReplaySession::ReplaySession(const std::string& dir)
    : reader_(std::make_unique<TraceReader>(dir)), clock_(reader_->meta()) {
    if (reader_->blocks().empty()) {
        if (reader_->error()) throw *reader_->error();
        throw BadFileError(
            fmt::format("{}: the trace holds no events{}", dir,
                        reader_->live() ? " yet (its process runs: try again)" : ""));
    }
    timeline_ = std::make_unique<ReplayTimeline>(*reader_);
    cursor_ = std::make_unique<ReplayCursor>(*timeline_);
}

ReplayFrame ReplaySession::frameOf(uint32_t code, uint32_t line) const {
    const TraceCode* known = reader_->code(code);
    return known ? ReplayFrame{known->qualname, known->file, line} : ReplayFrame{"-", "-", line};
}

ReplayStop ReplaySession::stop() {
    ReplayStop stop;
    stop.event = cursor_->event();
    stop.at = frameOf(stop.event.code, stop.event.line);
    const auto& threads = timeline_->threads();
    stop.threadCount = threads.size();
    stop.threadIndex = 1 + std::distance(threads.begin(), threads.find(cursor_->place().thread));
    stop.wallNs = clock_.wallNs(stop.event.estimatedTimeNs);
    for (const TraceFrame& frame : cursor_->stack())
        stop.stack.push_back(frameOf(frame.code, frame.line));
    stop.frame = cursor_->frame();
    if (stop.shown().file != "-")
        stop.source = reader_->source(stop.shown().file, stop.event.estimatedTimeNs);
    return stop;
}

ReplayOutcome ReplaySession::execute(std::string_view line) {
    line = trim(line);
    size_t space = line.find_first_of(" \t");
    std::string_view command = line.substr(0, space);
    std::string_view argument =
        space == std::string_view::npos ? std::string_view() : trim(line.substr(space));
    try {
        checkArgument(command, argument);
        if (command == "q") {
            ReplayOutcome outcome;
            outcome.quit = true;
            return outcome;
        }
        if (command == "h") return ReplayOutcome::saying(replayHelp());
        if (command == "b") return breakpoint(argument);
        if (command == "cl") return clearBreakpoints(argument);
        if (command == "g") return reload();
        return move(command, argument);
    } catch (const UsageError& error) {
        ReplayOutcome outcome;
        outcome.error = error.what();
        return outcome;
    }
}

ReplayOutcome ReplaySession::move(std::string_view command, std::string_view argument) {
    bool lower = command[0] >= 'a';
    Direction direction = lower ? Direction::kForward : Direction::kBackward;
    std::string_view way = lower ? "later" : "earlier";
    int32_t thread = timeline_->thread(cursor_->place().thread).nativeId;
    ReplayOutcome outcome;
    outcome.moved = true;
    auto unless = [&](bool moved, std::string note) {
        if (!moved) outcome = ReplayOutcome::saying({std::move(note)});
    };
    switch (command[0]) {
        case 'n':
        case 'N':
            unless(cursor_->next(direction),
                   fmt::format("no {} event of thread {} in this frame or a caller", way, thread));
            break;
        case 's':
        case 'S':
            unless(cursor_->step(direction), fmt::format("no {} event of thread {}", way, thread));
            break;
        case 'c':
        case 'C':
            if (const Breakpoint* hit = cursor_->resume(direction, breakpoints_))
                outcome.notes.push_back(
                    fmt::format("breakpoint {} at {}:{}", hit->id, hit->file, hit->line));
            else
                outcome.notes.push_back(fmt::format(
                    "no breakpoint hit: at the {} event of the trace", lower ? "last" : "first"));
            break;
        case 'u':
            unless(cursor_->up(), "at the outermost frame");
            break;
        case 'd':
            unless(cursor_->down(), "at the innermost frame");
            break;
        case 'j':
            cursor_->jump(parseJumpTime(argument, clock_, cursor_->event().estimatedTimeNs));
            break;
        case 't':
            unless(cursor_->switchThread(argument.empty() ? std::nullopt
                                                          : std::optional(threadId(argument))),
                   "no other thread to switch to");
            break;
        default:  // f, F
            unless(cursor_->find(argument, direction),
                   fmt::format("no {} call of {}", way, argument));
    }
    return outcome;
}

ReplayOutcome ReplaySession::breakpoint(std::string_view argument) {
    ReplayOutcome outcome;
    if (argument.empty()) {
        for (const Breakpoint& point : breakpoints_.list())
            outcome.notes.push_back(
                fmt::format("breakpoint {} at {}:{}", point.id, point.file, point.line));
        if (outcome.notes.empty()) outcome.notes.push_back("no breakpoints");
        return outcome;
    }
    const Breakpoint& point = breakpoints_.add(argument, stop().shown().file);
    outcome.notes.push_back(
        fmt::format("breakpoint {} at {}:{}", point.id, point.file, point.line));
    if (!anyFileMatches(point.file))
        outcome.notes.push_back(fmt::format("no recorded file matches {} (yet)", point.file));
    return outcome;
}

bool ReplaySession::anyFileMatches(const std::string& file) const {
    for (uint32_t id = 1; const TraceCode* code = reader_->code(id); ++id)
        if (fileMatches(code->file, file)) return true;
    return false;
}

ReplayOutcome ReplaySession::clearBreakpoints(std::string_view argument) {
    if (argument.empty()) {
        breakpoints_.clear();
        return ReplayOutcome::saying({"all breakpoints cleared"});
    }
    int id = 0;
    auto [end, error] = std::from_chars(argument.data(), argument.data() + argument.size(), id);
    if (error != std::errc() || end != argument.data() + argument.size() ||
        !breakpoints_.remove(id))
        throw UsageError(fmt::format("cl {}: no such breakpoint (b lists them)", argument));
    return ReplayOutcome::saying({fmt::format("breakpoint {} cleared", id)});
}

ReplayOutcome ReplaySession::reload() {
    uint64_t before = eventCount(*reader_);
    bool hadError = reader_->error().has_value();
    reader_->reload();
    timeline_->refresh();
    ReplayOutcome outcome;
    uint64_t added = eventCount(*reader_) - before;
    outcome.notes.push_back(added ? fmt::format("{} new events", added) : "no new events");
    if (!reader_->live()) outcome.notes.push_back("the recorded process has ended");
    if (!hadError && reader_->error()) outcome.notes.push_back(reader_->error()->what());
    return outcome;
}

}  // namespace vigil::cli
