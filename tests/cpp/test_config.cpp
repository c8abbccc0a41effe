#include "core/config.h"

#include <stdlib.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "core/errors.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "vigil-config-XXXXXX").string();
        ASSERT_NE(mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        path_ = (dir_ / "vigil.toml").string();
    }
    void TearDown() override { fs::remove_all(dir_); }

    // Writes vigil.toml in the test's directory.
    void write(const std::string& content) { std::ofstream(path_) << content; }

    // Only the variables of the test, never the real environment.
    AgentConfig load(const std::string& path) {
        return loadAgentConfig(path, [this](const char* name) -> const char* {
            auto found = env_.find(name);
            return found == env_.end() ? nullptr : found->second.c_str();
        });
    }

    // The one line of the error that loading path raises.
    std::string errorOf(const std::string& path) {
        try {
            load(path);
        } catch (const ConfigError& error) {
            EXPECT_EQ(error.code(), ExitCode::kConfig);
            EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
            return error.what();
        }
        ADD_FAILURE() << "no error from " << path;
        return {};
    }

    std::string fileErrorOf(const std::string& content) {
        write(content);
        return errorOf(path_);
    }

    fs::path dir_;
    std::string path_;
    std::map<std::string, std::string> env_;
};

template <typename Function>
std::string thrownBy(Function function) {
    try {
        function();
    } catch (const ConfigError& error) {
        return error.what();
    }
    ADD_FAILURE() << "no error";
    return {};
}

TEST_F(ConfigTest, NoFileNoEnvironmentGivesTheDefaults) {
    AgentConfig config = load("");
    // Also: the defaults of the table are those of the struct.
    EXPECT_EQ(config, AgentConfig{});
    EXPECT_EQ(config.service, "");
    EXPECT_TRUE(config.enabled);
    EXPECT_EQ(config.logPath, "");
    EXPECT_TRUE(config.longRequests);
    EXPECT_EQ(config.threshold, 2.0);
    EXPECT_EQ(config.interval, 2.0);
    EXPECT_EQ(config.requestsSignal, SIGUSR1);
    EXPECT_EQ(config.stacksSignal, SIGUSR2);
    EXPECT_EQ(config.stateDir, "/dev/shm");
    EXPECT_EQ(config.maxRequests, 1024);
    EXPECT_EQ(config.header, "X-Vigil-Transaction");
}

TEST_F(ConfigTest, ReadsEveryKeyOfTheFile) {
    write(R"(
[agent]
service = "shop"
enabled = false

[log]
path = "/var/log/shop/vigil.log"
logger = "vigil"

[long_requests]
enabled = false
threshold = 0.5
interval = 10  # integers are seconds too

[signals]
requests = "USR2"
stacks = 10

[state]
dir = "/run/shop"
max_requests = 65536

[requests]
header = "X-Request-Name"
)");
    AgentConfig config = load(path_);
    EXPECT_EQ(config.service, "shop");
    EXPECT_FALSE(config.enabled);
    EXPECT_EQ(config.logPath, "/var/log/shop/vigil.log");
    EXPECT_EQ(config.logger, "vigil");
    EXPECT_FALSE(config.longRequests);
    EXPECT_EQ(config.threshold, 0.5);
    EXPECT_EQ(config.interval, 10.0);
    EXPECT_EQ(config.requestsSignal, SIGUSR2);
    EXPECT_EQ(config.stacksSignal, 10);
    EXPECT_EQ(config.stateDir, "/run/shop");
    EXPECT_EQ(config.maxRequests, 65536);
    EXPECT_EQ(config.header, "X-Request-Name");
}

TEST_F(ConfigTest, AcceptsEverySpellingOfASignal) {
    for (auto [text, number] : std::map<std::string, int>{{"SIGTERM", SIGTERM},
                                                          {"term", SIGTERM},
                                                          {"SigHup", SIGHUP},
                                                          {"off", 0},
                                                          {"", 0},
                                                          {"0", 0},
                                                          {" 14 ", 14},
                                                          {"SIGRTMIN", SIGRTMIN},
                                                          {"RTMIN+2", SIGRTMIN + 2},
                                                          {"SIGRTMAX-1", SIGRTMAX - 1}}) {
        env_["VIGIL_SIGNALS_REQUESTS"] = text;
        EXPECT_EQ(load("").requestsSignal, number) << text;
    }
}

TEST_F(ConfigTest, EnvironmentBeatsTheFile) {
    write("[long_requests]\nthreshold = 5\n[signals]\nrequests = \"SIGUSR1\"\n");
    env_["VIGIL_LONG_REQUESTS_THRESHOLD"] = "0.5";
    env_["VIGIL_LONG_REQUESTS_ENABLED"] = "no";
    env_["VIGIL_SIGNALS_REQUESTS"] = "off";
    env_["VIGIL_STATE_MAX_REQUESTS"] = "16";
    env_["VIGIL_AGENT_SERVICE"] = "billing";
    AgentConfig config = load(path_);
    EXPECT_EQ(config.threshold, 0.5);
    EXPECT_FALSE(config.longRequests);
    EXPECT_EQ(config.requestsSignal, 0);
    EXPECT_EQ(config.maxRequests, 16);
    EXPECT_EQ(config.service, "billing");
}

TEST_F(ConfigTest, EnvironmentNamesFollowTheTable) {
    EXPECT_EQ(configEnvName(configKeys()[0]), "VIGIL_AGENT_SERVICE");
    for (const ConfigKey& key : configKeys()) {
        EXPECT_TRUE(configEnvName(key).starts_with("VIGIL_")) << key.key;
    }
}

TEST_F(ConfigTest, OverridesTakeBothSpellings) {
    AgentConfig config = load("");
    applyOverride(config, "long_requests.threshold", "0.25", "vigil.start()");
    applyOverride(config, "long_requests_interval", "3", "vigil.start()");
    applyOverride(config, "agent_enabled", "False", "vigil.start()");  // Python's str(False)
    applyOverride(config, "signals.stacks", "SIGRTMIN+1", "vigil.start()");
    applyOverride(config, "requests.header", "X-Txn", "vigil.start()");
    EXPECT_EQ(config.threshold, 0.25);
    EXPECT_EQ(config.interval, 3.0);
    EXPECT_FALSE(config.enabled);
    EXPECT_EQ(config.stacksSignal, SIGRTMIN + 1);
    EXPECT_EQ(config.header, "X-Txn");
    validateAgentConfig(config, "vigil.start()");
}

TEST_F(ConfigTest, BadValueNamesFileLineKeyAndExpectation) {
    EXPECT_EQ(
        fileErrorOf("# the agent\n\n[long_requests]\nenabled = true\n\n\nthreshold = \"soon\"\n"),
        path_ + ":7: [long_requests] threshold: expected a number of seconds > 0, got \"soon\"");
    EXPECT_EQ(fileErrorOf("[long_requests]\ninterval = -1\n"),
              path_ + ":2: [long_requests] interval: expected a number of seconds > 0, got -1");
    EXPECT_EQ(fileErrorOf("[long_requests]\ninterval = nan\n"),
              path_ + ":2: [long_requests] interval: expected a number of seconds > 0, got nan");
    EXPECT_EQ(fileErrorOf("[state]\nmax_requests = 0\n"),
              path_ + ":2: [state] max_requests: expected an integer from 1 to 65536, got 0");
    EXPECT_EQ(fileErrorOf("[state]\nmax_requests = 2.5\n"),
              path_ + ":2: [state] max_requests: expected an integer from 1 to 65536, got 2.5");
    EXPECT_EQ(fileErrorOf("[agent]\nenabled = \"yes\"\n"),
              path_ + ":2: [agent] enabled: expected true or false, got \"yes\"");
    EXPECT_EQ(fileErrorOf("[agent]\nservice = [\"a\"]\n"),
              path_ + ":2: [agent] service: expected a string, got an array");
    // Still one line.
    EXPECT_EQ(fileErrorOf("[agent]\nenabled = \"a\\nb\"\n"),
              path_ + ":2: [agent] enabled: expected true or false, got \"a\\x0ab\"");
}

TEST_F(ConfigTest, BadSignalsSayWhy) {
    EXPECT_EQ(
        fileErrorOf("[signals]\nstacks = \"SIGKILL\"\n"),
        path_ +
            ":2: [signals] stacks: expected a signal name (SIGUSR1 or USR1), a signal number, "
            "or \"off\", got \"SIGKILL\" (SIGKILL cannot be caught)");
    EXPECT_EQ(
        fileErrorOf("[signals]\nstacks = 99\n"),
        path_ +
            ":2: [signals] stacks: expected a signal name (SIGUSR1 or USR1), a signal number, "
            "or \"off\", got 99 (not a signal number)");
    EXPECT_NE(fileErrorOf("[signals]\nstacks = \"SEGV\"\n").find("(SIGSEGV is for faults)"),
              std::string::npos);
    EXPECT_EQ(fileErrorOf("[signals]\nrequests = \"USR2\"\n"),
              path_ +
                  ":2 and the built-in default: [signals] requests and stacks: expected two "
                  "different signals, got SIGUSR2 for both");
}

TEST_F(ConfigTest, BadEnvironmentVariableIsNamed) {
    env_["VIGIL_SIGNALS_STACKS"] = "SIGFOO";
    EXPECT_EQ(errorOf(""),
              "VIGIL_SIGNALS_STACKS: [signals] stacks: expected a signal name (SIGUSR1 or USR1), a "
              "signal number, or \"off\", got \"SIGFOO\" (not a signal name)");
    env_.clear();
    env_["VIGIL_LONG_REQUESTS_THRESHOLD"] = "2s";
    EXPECT_EQ(errorOf(""),
              "VIGIL_LONG_REQUESTS_THRESHOLD: [long_requests] threshold: expected a number of "
              "seconds > 0, got \"2s\"");
    env_.clear();
    env_["VIGIL_LONG_REQUESTS_ENABLED"] = "maybe";
    EXPECT_EQ(errorOf(""),
              "VIGIL_LONG_REQUESTS_ENABLED: [long_requests] enabled: expected true or false, got "
              "\"maybe\"");
}

TEST_F(ConfigTest, UnknownKeysAreErrorsWithSuggestions) {
    EXPECT_EQ(fileErrorOf("[long_request]\nthreshold = 1\n"),
              path_ + ":2: unknown key [long_request] threshold (did you mean [long_requests]?)");
    EXPECT_EQ(fileErrorOf("[long_requests]\ntreshold = 1\n"),
              path_ + ":2: unknown key [long_requests] treshold (did you mean threshold?)");
    EXPECT_EQ(fileErrorOf("[long_requests]\ncolour = 1\n"),
              path_ +
                  ":2: unknown key [long_requests] colour (the keys of [long_requests] are "
                  "enabled, threshold, interval)");
    EXPECT_EQ(fileErrorOf("threshold = 1\n"),
              path_ +
                  ":1: unknown key threshold outside any section (did you mean [long_requests] "
                  "threshold?)");
    EXPECT_EQ(
        fileErrorOf("[tuning]\nthreshold = 1\n"),
        path_ + ":2: unknown key [tuning] threshold (did you mean [long_requests] threshold?)");
    EXPECT_EQ(fileErrorOf("[stat]\n"),
              path_ + ":1: unknown section [stat] (did you mean [state]?)");
    EXPECT_EQ(fileErrorOf("agent = 1\n"), path_ + ":1: expected a section [agent], got 1");
}

TEST_F(ConfigTest, TheFirstProblemInTheFileIsReported) {
    // toml++ keeps keys sorted: [agent] comes first there, not here.
    EXPECT_EQ(fileErrorOf("[state]\nmax_requests = 0\n[agent]\nenabled = 3\n"),
              path_ + ":2: [state] max_requests: expected an integer from 1 to 65536, got 0");
}

TEST_F(ConfigTest, UnreadableFileAndBadSyntaxAreErrors) {
    EXPECT_EQ(errorOf((dir_ / "none.toml").string()),
              (dir_ / "none.toml").string() +
                  ": cannot read the configuration file: No such file or directory");
    EXPECT_EQ(errorOf(dir_.string()),
              dir_.string() + ": cannot read the configuration file: Is a directory");
    std::string syntax = fileErrorOf("[agent]\nenabled = true\nservice = \n");
    EXPECT_TRUE(syntax.starts_with(path_ + ":3: not valid TOML: ")) << syntax;
    EXPECT_NE(syntax.find("(column "), std::string::npos) << syntax;
}

TEST_F(ConfigTest, OverrideErrorsNameTheOrigin) {
    AgentConfig config;
    EXPECT_EQ(
        thrownBy([&] { applyOverride(config, "long_requests_treshold", "1", "vigil.start()"); }),
        "vigil.start(): unknown key \"long_requests_treshold\" (did you mean "
        "long_requests_threshold?)");
    EXPECT_EQ(
        thrownBy([&] { applyOverride(config, "state.max_requests", "lots", "vigil.start()"); }),
        "vigil.start(): [state] max_requests: expected an integer from 1 to 65536, got "
        "\"lots\"");
    EXPECT_EQ(thrownBy([&] { applyOverride(config, "nothing", "1", "vigil.start()"); }),
              "vigil.start(): unknown key \"nothing\"");
}

TEST_F(ConfigTest, ValidationChecksTheStoredValues) {
    AgentConfig config;
    config.interval = 0;
    EXPECT_EQ(thrownBy([&] { validateAgentConfig(config, "vigil.start()"); }),
              "vigil.start(): [long_requests] interval: expected a number of seconds > 0, got 0");
    config = AgentConfig{};
    config.stacksSignal = config.requestsSignal;
    EXPECT_EQ(thrownBy([&] { validateAgentConfig(config, "vigil.start()"); }),
              "vigil.start(): [signals] requests and stacks: expected two different signals, got "
              "SIGUSR1 for both");
    config.stacksSignal = 0;
    config.requestsSignal = 0;
    validateAgentConfig(config, "vigil.start()");  // both off is fine
}

TEST_F(ConfigTest, DocsHoldTheReferenceTable) {
    std::ifstream docs(VIGIL_DOCS_DIR "/configuration.md");
    ASSERT_TRUE(docs) << VIGIL_DOCS_DIR "/configuration.md";
    std::stringstream content;
    content << docs.rdbuf();
    std::string table = configReferenceMarkdown();
    EXPECT_NE(content.str().find(table), std::string::npos)
        << "docs/configuration.md is out of date; its table must be exactly:\n"
        << table;
}

}  // namespace
}  // namespace vigil
