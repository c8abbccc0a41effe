// vigil: see inside a live Python process.
#include <cstdio>
#include <exception>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/errors.h"

namespace vigil::cli {

void Verbosity::say(std::string_view message) const {
    if (verbose) fmt::print(stderr, "vigil: {}\n", message);
}

void writeStdout(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
        throw OutputError("cannot write to standard output");
}

}  // namespace vigil::cli

int main(int argc, char** argv) {
    using namespace vigil;
    CLI::App app{"vigil: see inside a live Python process without stopping it"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "vigil 0.1.0");
    cli::Verbosity verbosity;
    app.add_flag("-v,--verbose", verbosity.verbose, "Say which steps ran and why one failed");
    const std::vector<cli::Command> commands = {
        cli::addDumpCommand(app, verbosity),     cli::addRecordCommand(app, verbosity),
        cli::addTopCommand(app, verbosity),      cli::addRunCommand(app, verbosity),
        cli::addRequestsCommand(app, verbosity), cli::addShowCommand(app, verbosity),
        cli::addQueryCommand(app, verbosity),    cli::addAnalyseCommand(app, verbosity),
        cli::addReplayCommand(app, verbosity),
    };
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        int code = app.exit(error);
        return code == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
    }
    try {
        for (const cli::Command& command : commands) {
            if (command.app->parsed()) return command.run();
        }
        return static_cast<int>(ExitCode::kUsage);
    } catch (const Error& error) {
        fmt::print(stderr, "vigil: {}\n", error.what());
        return static_cast<int>(error.code());
    } catch (const std::exception& error) {
        fmt::print(stderr, "vigil: internal error: {} (please report it)\n", error.what());
        return static_cast<int>(ExitCode::kInternal);
    }
}
