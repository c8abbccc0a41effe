// The subcommands of `vigil`: each registers its options on the CLI11 app
// and returns the function that runs it.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace vigil::cli {

struct Command {
    CLI::App* app;
    std::function<int()> run;
};

// Says things on stderr when --verbose was given.
struct Verbosity {
    bool verbose = false;
    void say(std::string_view message) const;
};

// Writes text to standard output, flushed; OutputError when it cannot.
void writeStdout(const std::string& text);

Command addDumpCommand(CLI::App& app, const Verbosity& verbosity);
Command addRecordCommand(CLI::App& app, const Verbosity& verbosity);
Command addTopCommand(CLI::App& app, const Verbosity& verbosity);
Command addRunCommand(CLI::App& app, const Verbosity& verbosity);
Command addRequestsCommand(CLI::App& app, const Verbosity& verbosity);
Command addShowCommand(CLI::App& app, const Verbosity& verbosity);
Command addQueryCommand(CLI::App& app, const Verbosity& verbosity);
Command addAnalyseCommand(CLI::App& app, const Verbosity& verbosity);
Command addReplayCommand(CLI::App& app, const Verbosity& verbosity);

}  // namespace vigil::cli
