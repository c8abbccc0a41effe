// `vigil run [--config FILE] [--trace PACKAGE] -- PROGRAM ARGS...`: starts a Python program with
// the agent inside, without a change to its code. Python itself loads the
// agent: PYTHONPATH gets a directory whose sitecustomize.py imports
// vigil._autostart (then runs the sitecustomize Python would have run), and
// the vigil package; VIGIL_CONFIG or VIGIL_AUTOSTART tell the agent to start.
// vigil then becomes the program (execvp), so the program keeps vigil's PID
// and gets signals directly, as if it had been started without vigil.

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "core/config.h"
#include "core/errors.h"

namespace vigil::cli {
namespace {

namespace fs = std::filesystem;

// Under the Python directory, next to the vigil package: a directory holding
// only sitecustomize.py, so that putting it on PYTHONPATH adds nothing else.
constexpr const char* kSiteDirectory = "_vigil_run";

struct RunOptions {
    std::string config;
    std::vector<std::string> tracePackages;
    std::string traceDir;
    std::vector<std::string> command;
};

bool holdsPackage(const fs::path& directory) {
    std::error_code ignored;
    return fs::is_regular_file(directory / "vigil" / "__init__.py", ignored) &&
           fs::is_regular_file(directory / kSiteDirectory / "sitecustomize.py", ignored);
}

// Where the package may be, relative to this binary: the build tree
// (build/src/cli/vigil next to build/python), then an install prefix
// (<prefix>/bin/vigil next to <prefix>/lib/vigil/python).
std::vector<fs::path> packageCandidates() {
    std::error_code error;
    fs::path self = fs::read_symlink("/proc/self/exe", error);
    if (error) return {};
    fs::path directory = self.parent_path();
    return {(directory / ".." / ".." / "python").lexically_normal(),
            (directory / ".." / "lib" / "vigil" / "python").lexically_normal()};
}

// The directory holding the vigil package (and the sitecustomize directory).
fs::path findPythonDirectory(const Verbosity& verbosity) {
    if (const char* forced = std::getenv("VIGIL_PYTHON_DIR"); forced && *forced) {
        if (holdsPackage(forced)) return fs::absolute(forced);
        throw BadFileError(fmt::format(
            "VIGIL_PYTHON_DIR={} does not hold the vigil package (vigil/__init__.py and {}/"
            "sitecustomize.py)",
            forced, kSiteDirectory));
    }
    std::vector<fs::path> candidates = packageCandidates();
    for (const fs::path& candidate : candidates) {
        if (holdsPackage(candidate)) return candidate;
        verbosity.say(fmt::format("no vigil package in {}", candidate.string()));
    }
    std::vector<std::string> looked;
    for (const fs::path& candidate : candidates) looked.push_back(candidate.string());
    throw BadFileError(fmt::format(
        "cannot find vigil's Python package (looked in {}): build the vigil_agent target, or "
        "set VIGIL_PYTHON_DIR to the directory holding vigil/",
        fmt::join(looked, ", ")));
}

// The agent reads the configuration after Python has started, where a mistake
// can only end the program; reading it first (the file, then the VIGIL_*
// variables) fails before anything ran, with the same message and exit code.
fs::path checkedConfig(const std::string& path, const Verbosity& verbosity) {
    loadAgentConfig(path);
    verbosity.say(path.empty() ? "configuration: defaults and VIGIL_* variables are valid"
                               : fmt::format("configuration: {} is valid", path));
    return path.empty() ? fs::path() : fs::absolute(path);
}

void setEnvironment(const char* name, const std::string& value, const Verbosity& verbosity) {
    if (::setenv(name, value.c_str(), 1) != 0) {
        throw Error(ExitCode::kInternal,
                    fmt::format("cannot set {}: {}", name, std::strerror(errno)));
    }
    verbosity.say(fmt::format("{}={}", name, value));
}

// Ours first, so that our sitecustomize is the one Python finds; the program's
// own PYTHONPATH after, unchanged (an empty entry would add the current directory).
std::string pythonPath(const fs::path& pythonDirectory) {
    std::string path = (pythonDirectory / kSiteDirectory).string() + ":" + pythonDirectory.string();
    const char* existing = std::getenv("PYTHONPATH");
    if (existing && *existing) path += std::string(":") + existing;
    return path;
}

[[noreturn]] void execute(const std::vector<std::string>& command) {
    std::vector<char*> argv;
    for (const std::string& argument : command) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    throw UsageError(fmt::format("cannot start {}: {}", command.front(), std::strerror(errno)));
}

// --trace PACKAGE: the agent's [trace] section, through its variables
// (which beat the file), with the directory made if need be.
void traceEnvironment(const RunOptions& options, const Verbosity& verbosity) {
    if (options.tracePackages.empty()) return;
    setEnvironment("VIGIL_TRACE_PACKAGES", fmt::format("{}", fmt::join(options.tracePackages, ",")),
                   verbosity);
    setEnvironment("VIGIL_TRACE_CREATE_DIR", "true", verbosity);
    if (!options.traceDir.empty())
        setEnvironment("VIGIL_TRACE_DIR", fs::absolute(options.traceDir).string(), verbosity);
}

int runRun(const RunOptions& options, const Verbosity& verbosity) {
    fs::path pythonDirectory = findPythonDirectory(verbosity);
    traceEnvironment(options, verbosity);
    fs::path config = checkedConfig(options.config, verbosity);
    if (config.empty()) {
        setEnvironment("VIGIL_AUTOSTART", "1", verbosity);
    } else {
        setEnvironment("VIGIL_CONFIG", config.string(), verbosity);
    }
    setEnvironment("PYTHONPATH", pythonPath(pythonDirectory), verbosity);
    execute(options.command);
}

}  // namespace

Command addRunCommand(CLI::App& app, const Verbosity& verbosity) {
    auto options = std::make_shared<RunOptions>();
    CLI::App* run = app.add_subcommand(
        "run", "Start a Python program with the vigil agent inside (no change to its code)");
    run->add_option("--config", options->config,
                    "The agent's configuration file (TOML; default: $VIGIL_CONFIG)")
        ->envname("VIGIL_CONFIG");
    run->add_option("--trace", options->tracePackages,
                    "Record the line-by-line execution of this package (module name; repeat "
                    "for more) into the trace directory (vigil replay, vigil analyse)")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    run->add_option("--trace-dir", options->traceDir,
                    "Where --trace records (default: [trace] dir, ~/.local/state/vigil/trace)");
    run->add_option("command", options->command, "The program and its arguments (after --)")
        ->required();
    return {run, [options, &verbosity] { return runRun(*options, verbosity); }};
}

}  // namespace vigil::cli
