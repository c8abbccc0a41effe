// `vigil record`: a sampling profile of a running process or of a command,
// written as a flame graph or any other format when recording stops.

#include <algorithm>
#include <atomic>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/recording.h"
#include "core/errors.h"
#include "core/recorder.h"
#include "output/profile_writers.h"

namespace vigil::cli {
namespace {

struct RecordOptions {
    pid_t pid = 0;
    std::vector<std::string> command;
    std::vector<std::string> outputs;
    std::string format = "html";
    double rate = 100;
    double duration = 0;
    bool idle = false;
    bool gil = false;
    bool threads = false;
    bool subprocesses = false;
};

std::string extensionOf(const std::string& format) {
    if (format == "speedscope") return "speedscope.json";
    if (format == "folded") return "folded";
    if (format == "pprof") return "pb.gz";
    if (format == "chrome") return "trace.json";
    return "html";
}

// The format an output path asks for by its ending, else the --format given.
std::string formatOf(const std::string& path, const std::string& fallback) {
    static const std::pair<std::string_view, std::string_view> endings[] = {
        {".html", "html"},          {".speedscope.json", "speedscope"},
        {".folded", "folded"},      {".pb.gz", "pprof"},
        {".pprof", "pprof"},        {".trace.json", "chrome"},
        {".chrome.json", "chrome"},
    };
    for (const auto& [ending, format] : endings) {
        if (path.size() > ending.size() &&
            path.compare(path.size() - ending.size(), ending.size(), ending) == 0) {
            return std::string(format);
        }
    }
    return fallback;
}

std::string describeTarget(const Recorder& recorder, const RecordOptions& options) {
    if (!options.command.empty())
        return fmt::format("{} (pid {})", options.command.front(), recorder.child());
    return fmt::format("pid {}", options.pid);
}

void printSummary(const Profile& profile, const Recorder& recorder) {
    const RecordingStats& stats = profile.stats;
    sayEndedProcesses(recorder);
    fmt::print(
        stderr,
        "vigil: {} samples in {:.1f} s, {:.1f} Hz achieved of {:g} Hz asked ({} late, {} missed "
        "rounds); {:.2f}% invalid samples\n",
        stats.samples, stats.durationSeconds, stats.achievedHz(), stats.requestedHz,
        stats.lateTicks, stats.missedTicks, stats.invalidPercent());
}

int runRecord(RecordOptions options, const Verbosity& verbosity) {
    validateRate(options.rate);
    if (options.duration < 0) throw UsageError("--duration must be positive (seconds)");
    if (options.pid == 0 && options.command.empty()) {
        throw UsageError(
            "say what to record: --pid PID, or -- followed by a command (vigil record -- python "
            "app.py)");
    }
    StringTable strings;
    std::vector<std::string> formats;
    for (const std::string& path : options.outputs)
        formats.push_back(formatOf(path, options.format));
    bool timeline =
        options.format == "chrome" || std::count(formats.begin(), formats.end(), "chrome");
    Profile profile(strings, timeline);
    RecorderOptions recorderOptions;
    recorderOptions.rateHz = options.rate;
    recorderOptions.durationSeconds = options.duration;
    recorderOptions.subprocesses = options.subprocesses;
    recorderOptions.sampler = {options.idle, options.gil, options.threads, options.subprocesses};
    Recorder recorder(profile, recorderOptions,
                      [&](std::string_view message) { verbosity.say(message); });
    StopSignals signals;
    if (options.command.empty()) {
        recorder.attach(options.pid);
    } else {
        options.pid = recorder.launch(options.command);
    }
    if (options.outputs.empty()) {
        options.outputs.push_back(
            fmt::format("vigil-{}.{}", options.pid, extensionOf(options.format)));
        formats.push_back(options.format);
    }
    // Opened now: an unwritable path fails before anything is recorded.
    std::vector<std::unique_ptr<OutputFile>> files;
    for (const std::string& path : options.outputs)
        files.push_back(std::make_unique<OutputFile>(path));
    StatusLine status(describeTarget(recorder, options));
    recorder.run(signals.stop(),
                 [&](const RoundInfo& round) { status.update(round, profile.stats); });
    status.clear();
    ProfileMetadata metadata{fmt::format("vigil record: {}", describeTarget(recorder, options))};
    recorder.stopChild();
    printSummary(profile, recorder);
    for (size_t i = 0; i < files.size(); ++i) {
        files[i]->write(
            [&](std::ostream& out) { writeProfile(profile, formats[i], metadata, out); });
        fmt::print(stderr, "vigil: wrote {} ({})\n", options.outputs[i], formats[i]);
    }
    return 0;
}

}  // namespace

Command addRecordCommand(CLI::App& app, const Verbosity& verbosity) {
    auto options = std::make_shared<RecordOptions>();
    CLI::App* record =
        app.add_subcommand("record", "Record a sampling profile (flame graph by default)");
    record->add_option("-p,--pid", options->pid, "Process to record");
    record->add_option("command", options->command, "Or a command to start and record (after --)");
    record->add_option(
        "-o,--output", options->outputs,
        "Output file; repeat for several formats of one recording, told apart by their endings "
        "(.html .speedscope.json .folded .pb.gz .trace.json); default vigil-PID.html");
    record->add_option("-f,--format", options->format, "Output format")
        ->check(CLI::IsMember({"html", "speedscope", "folded", "pprof", "chrome"}));
    record->add_option("-r,--rate", options->rate, "Samples per second (1 to 100000)");
    record->add_option("-d,--duration", options->duration,
                       "Stop after this many seconds (default: Ctrl-C)");
    record->add_flag("--idle", options->idle,
                     "Keep samples of idle threads too (default: only running ones)");
    record->add_flag("--gil", options->gil, "Keep only samples of the thread holding the GIL");
    record->add_flag("--threads", options->threads, "Split the profile per thread");
    record->add_flag("--subprocesses", options->subprocesses, "Follow child Python processes too");
    record->get_option("--pid")->excludes(record->get_option("command"));
    return {record, [options, &verbosity] { return runRecord(*options, verbosity); }};
}

}  // namespace vigil::cli
