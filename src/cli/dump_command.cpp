// `vigil dump PID`: every thread's Python stack, like jstack.
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/pause.h"
#include "core/python_process.h"
#include "output/dump_writer.h"

namespace vigil::cli {
namespace {

struct DumpOptions {
    pid_t pid = 0;
    bool json = false;
    bool locals = false;
    bool blocking = false;
    std::string runtimeFrom = "auto";
};

RuntimeStrategy parseStrategy(const std::string& name) {
    if (name == "symbol") return RuntimeStrategy::kSymbol;
    if (name == "section") return RuntimeStrategy::kSection;
    if (name == "scan") return RuntimeStrategy::kScan;
    return RuntimeStrategy::kAuto;
}

int runDump(const DumpOptions& options, const Verbosity& verbosity) {
    auto narrate = [&](std::string_view message) { verbosity.say(message); };
    PythonProcess process(options.pid, parseStrategy(options.runtimeFrom), narrate);
    SnapshotOptions snapshotOptions;
    snapshotOptions.locals = options.locals;
    // Tests use this to make the target exit between discovery and the snapshot.
    if (std::getenv("VIGIL_TEST_HOLD_BEFORE_SNAPSHOT")) {
        fmt::print(stderr, "vigil: found the interpreter, waiting for a line on stdin\n");
        std::fflush(stderr);
        std::getchar();
    }
    auto start = std::chrono::steady_clock::now();
    std::optional<ProcessPause> pause;
    if (options.blocking) {
        pause.emplace(options.pid);
        verbosity.say(fmt::format("paused {} threads", pause->threadCount()));
        // Tests use this to interrupt vigil while the target is paused.
        if (std::getenv("VIGIL_TEST_HOLD_PAUSE")) {
            fmt::print(stderr, "vigil: paused, waiting for a signal\n");
            std::fflush(stderr);
            pause->holdUntilSignal();
        }
    }
    Snapshot snapshot = process.snapshot(snapshotOptions);
    pause.reset();
    double durationMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    verbosity.say(fmt::format("snapshot in {:.2f} ms, {} attempt(s), {} torn walk(s) retried",
                              durationMs, snapshot.attempts, snapshot.tornWalks));
    DumpContext context{process, snapshot, process.strings(), options.blocking, durationMs};
    std::string text = options.json ? dumpAsJson(context).dump(
                                          2, ' ', false, nlohmann::json::error_handler_t::replace) +
                                          "\n"
                                    : dumpAsText(context);
    writeStdout(text);
    return snapshot.complete() ? 0 : static_cast<int>(ExitCode::kInconsistent);
}

}  // namespace

Command addDumpCommand(CLI::App& app, const Verbosity& verbosity) {
    auto options = std::make_shared<DumpOptions>();
    CLI::App* dump = app.add_subcommand("dump", "Print every thread's Python stack");
    dump->add_option("pid", options->pid, "Process to inspect")->required();
    dump->add_flag("--json", options->json, "One JSON document (schema: docs/dump-json.md)");
    dump->add_flag("--locals", options->locals, "Show each frame's arguments and local variables");
    dump->add_flag("--blocking", options->blocking,
                   "Pause the process (ptrace) for an exactly consistent snapshot");
    dump->add_option("--runtime-from", options->runtimeFrom,
                     "Troubleshooting: where to find _PyRuntime")
        ->check(CLI::IsMember({"auto", "symbol", "section", "scan"}))
        ->group("Troubleshooting");
    return {dump, [options, &verbosity] { return runDump(*options, verbosity); }};
}

}  // namespace vigil::cli
