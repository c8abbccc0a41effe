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
    env_["HOME"] = "/home/ada";
    AgentConfig config = load("");
    // Also: the defaults of the table are those of the struct, but for the
    // "~" that loading expands.
    AgentConfig expected;
    EXPECT_EQ(expected.storeDir, "~/.local/state/vigil");
    expected.storeDir = "/home/ada/.local/state/vigil";
    expected.traceDir = "/home/ada/.local/state/vigil/trace";
    EXPECT_EQ(config, expected);
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
    EXPECT_EQ(config.requestLogPath, "");
    EXPECT_EQ(config.profileRate, 100);
    EXPECT_EQ(config.storeMaxAge, 7 * 86400.0);
    EXPECT_EQ(config.storeMaxSize, int64_t{1} << 30);
    EXPECT_EQ(config.storeQueue, 10000);
    EXPECT_TRUE(config.keepExceptions);
    EXPECT_EQ(config.maxRepr, 200);
    EXPECT_TRUE(config.rules.empty());
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

[request_log]
path = "/var/log/shop/requests.log"

[profile]
rate = 1000

[store]
dir = ""
max_age = "12h"
max_size = "500MB"
queue = 1000000

[exceptions]
keep = false
max_repr = 20
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
    EXPECT_EQ(config.requestLogPath, "/var/log/shop/requests.log");
    EXPECT_EQ(config.profileRate, 1000);
    EXPECT_EQ(config.storeDir, "");
    EXPECT_EQ(config.storeMaxAge, 12 * 3600.0);
    EXPECT_EQ(config.storeMaxSize, int64_t{500} << 20);
    EXPECT_EQ(config.storeQueue, 1000000);
    EXPECT_FALSE(config.keepExceptions);
    EXPECT_EQ(config.maxRepr, 20);
}

TEST_F(ConfigTest, DurationsTakeUnits) {
    for (auto [text, seconds] : std::map<std::string, double>{{"30s", 30},
                                                              {"15m", 900},
                                                              {"12h", 43200},
                                                              {"7d", 604800},
                                                              {" 2 D ", 172800},
                                                              {"1.5h", 5400},
                                                              {"500ms", 0.5},
                                                              {"90", 90},
                                                              {"0.25", 0.25}}) {
        env_["VIGIL_STORE_MAX_AGE"] = text;
        EXPECT_EQ(load("").storeMaxAge, seconds) << text;
    }
    env_.clear();
    write("[store]\nmax_age = 3600\n");
    EXPECT_EQ(load(path_).storeMaxAge, 3600.0);
    write("[store]\nmax_age = \"1d\"\n");
    EXPECT_EQ(load(path_).storeMaxAge, 86400.0);
    for (std::string bad : {"soon", "7 days", "0", "0s", "-1d", "1y", "d", "inf", "nan"}) {
        env_["VIGIL_STORE_MAX_AGE"] = bad;
        EXPECT_EQ(errorOf(""),
                  "VIGIL_STORE_MAX_AGE: [store] max_age: expected a duration > 0: "
                  "seconds, or a string with a unit such as \"30s\", \"15m\", "
                  "\"12h\", \"7d\", got \"" +
                      bad + "\"");
    }
}

TEST_F(ConfigTest, SizesTakeUnits) {
    for (auto [text, bytes] :
         std::map<std::string, int64_t>{{"64KB", 64 << 10},
                                        {"64kib", 64 << 10},
                                        {"500MB", int64_t{500} << 20},
                                        {"500 M", int64_t{500} << 20},
                                        {"1GB", int64_t{1} << 30},
                                        {"1.5GiB", int64_t{3} << 29},
                                        {"2TB", int64_t{2} << 40},
                                        {"4096", 4096},
                                        {"100B", 100},
                                        {"9007199254740993", 9007199254740993}}) {
        env_["VIGIL_STORE_MAX_SIZE"] = text;
        EXPECT_EQ(load("").storeMaxSize, bytes) << text;
    }
    env_.clear();
    write("[store]\nmax_size = 1000000\n");
    EXPECT_EQ(load(path_).storeMaxSize, 1000000);
    write("[store]\nmax_size = 1e9\n");
    EXPECT_EQ(load(path_).storeMaxSize, 1000000000);
    EXPECT_EQ(fileErrorOf("[store]\nmax_size = \"1PB\"\n"),
              path_ +
                  ":2: [store] max_size: expected a size > 0: bytes, or a string with a unit such "
                  "as \"64KB\", \"500MB\", \"1GB\", got \"1PB\"");
    for (std::string bad : {"0", "-1", "lots", "0.5", "MB", "99999999TB"}) {
        env_["VIGIL_STORE_MAX_SIZE"] = bad;
        EXPECT_NE(errorOf("").find("[store] max_size: expected a size > 0"), std::string::npos)
            << bad;
    }
}

TEST_F(ConfigTest, HomeIsExpandedInPaths) {
    env_["HOME"] = "/home/ada/";
    write("[store]\ndir = \"~/vigil\"\n[request_log]\npath = \"~\"\n");
    AgentConfig config = load(path_);
    EXPECT_EQ(config.storeDir, "/home/ada/vigil");
    EXPECT_EQ(config.requestLogPath, "/home/ada");
    // Only a leading "~" or "~/": other paths are as written.
    for (std::string same : {"", "/var/lib/vigil", "~ada/vigil", "relative/~/x"}) {
        env_["VIGIL_STORE_DIR"] = same;
        EXPECT_EQ(load(path_).storeDir, same);
    }
    env_["VIGIL_STORE_DIR"] = "~/from-env";
    EXPECT_EQ(load(path_).storeDir, "/home/ada/from-env");
    // The directory is never the one of the string "~/...", wherever HOME is.
    applyOverride(config, "store_dir", "~/override", "vigil.start()");
    EXPECT_FALSE(config.storeDir.starts_with("~")) << config.storeDir;
    EXPECT_TRUE(config.storeDir.ends_with("/override")) << config.storeDir;
}

TEST_F(ConfigTest, AcceptsEverySpellingOfASignal) {
    for (auto [text, number] : std::map<std::string, int>{{"SIGTERM", SIGTERM},
                                                          {"term", SIGTERM},
                                                          {"SigAlrm", SIGALRM},
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

TEST_F(ConfigTest, ListsComeAsArraysOrCommaSeparatedText) {
    write("[trace]\npackages = [\"shop\", \"trytond.modules.sale\"]\npaths = \"/srv/*.py\"\n");
    AgentConfig config = load(path_);
    EXPECT_EQ(config.tracePackages, (std::vector<std::string>{"shop", "trytond.modules.sale"}));
    EXPECT_EQ(config.tracePaths, (std::vector<std::string>{"/srv/*.py"}));
    env_["VIGIL_TRACE_PACKAGES"] = " billing , ,stock ";
    EXPECT_EQ(load(path_).tracePackages, (std::vector<std::string>{"billing", "stock"}));
    env_["VIGIL_TRACE_PACKAGES"] = "";
    EXPECT_TRUE(load(path_).tracePackages.empty());
    EXPECT_EQ(fileErrorOf("[trace]\npackages = [\"a\", 1]\n"),
              path_ +
                  ":2: [trace] packages: expected a list of strings (in an environment "
                  "variable: separated by commas), got an array");
    EXPECT_EQ(fileErrorOf("[trace]\npackages = [\"\"]\n"),
              path_ +
                  ":2: [trace] packages: expected a list of strings (in an environment "
                  "variable: separated by commas), got [\"\"] (an empty name)");
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
              path_ + ":2: [agent] service: expected a string, got [\"a\"]");
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
                  ":2 and the built-in default: [signals] requests and stacks: expected "
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
              "vigil.start(): [signals] requests and stacks: expected different signals, got "
              "SIGUSR1 for both");
    config.stacksSignal = SIGUSR2;
    config.reloadSignal = SIGUSR2;
    EXPECT_EQ(thrownBy([&] { validateAgentConfig(config, "vigil.start()"); }),
              "vigil.start(): [signals] stacks and reload: expected different signals, got "
              "SIGUSR2 for both");
    config.stacksSignal = 0;
    config.requestsSignal = 0;
    config.reloadSignal = 0;
    validateAgentConfig(config, "vigil.start()");  // all off is fine
}

TEST_F(ConfigTest, ReadsRules) {
    write(R"(
[agent]
service = "shop"

[[rules]]
name = "slow admin"
users = ["admin", "root"]
requests = ["sale.order.*", "GET /api/[a-z]*"]
attributes = { db = "shop_*", region = "eu-?" }
ratio = 0.01
min_duration = "500ms"
actions = ["log", "profile"]

[[rules]]
users = "batch"
requests = "report.*"
min_duration = 2
actions = "exception"
)");
    AgentConfig config = load(path_);
    ASSERT_EQ(config.rules.size(), 2u);
    RuleConfig first;
    first.name = "slow admin";
    first.users = {"admin", "root"};
    first.requests = {"sale.order.*", "GET /api/[a-z]*"};
    first.attributes = {{"db", "shop_*"}, {"region", "eu-?"}};
    first.ratio = 0.01;
    first.minDuration = 0.5;
    first.actions = kLog | kProfile;
    EXPECT_EQ(config.rules[0], first);
    RuleConfig second;
    second.users = {"batch"};
    second.requests = {"report.*"};
    second.minDuration = 2;
    second.actions = kException;
    EXPECT_EQ(config.rules[1], second);
    EXPECT_EQ(config.service, "shop");
    // An empty array is no rule at all.
    write("rules = []\n");
    EXPECT_TRUE(load(path_).rules.empty());
}

TEST_F(ConfigTest, BadRulesNameFileLineRuleKeyAndExpectation) {
    std::string rule = "[[rules]]\nactions = [\"log\"]\n";
    std::string named = "[[rules]]\nname = \"nightly\"\nactions = [\"log\"]\n";
    EXPECT_EQ(fileErrorOf(rule + named + "ratios = 0.5\n"),
              path_ + ":6: [[rules]] #2 \"nightly\": unknown key ratios (did you mean ratio?)");
    EXPECT_EQ(fileErrorOf(rule + "colour = 1\n"),
              path_ +
                  ":3: [[rules]] #1: unknown key colour (the keys of a rule are name, users, "
                  "requests, attributes, ratio, min_duration, actions)");
    EXPECT_EQ(fileErrorOf(rule + "users = 3\n"),
              path_ +
                  ":3: [[rules]] #1: users: expected a user name or a non-empty list of user "
                  "names, got 3");
    EXPECT_EQ(fileErrorOf(rule + "users = []\n"),
              path_ +
                  ":3: [[rules]] #1: users: expected a user name or a non-empty list of user "
                  "names, got []");
    EXPECT_EQ(fileErrorOf(rule + "requests = [\"ok.*\", \"sale.[ab\"]\n"),
              path_ +
                  ":3: [[rules]] #1: requests: expected a glob (*, ?, [...]), got \"sale.[ab\" "
                  "(unclosed [ at character 6)");
    EXPECT_EQ(fileErrorOf(rule + "requests = \"a\\\\\"\n"),
              path_ +
                  ":3: [[rules]] #1: requests: expected a glob (*, ?, [...]), got \"a\\\\\" (a "
                  "lone \\ at the end)");
    EXPECT_EQ(fileErrorOf(rule + "attributes = { db = \"[z-a]\" }\n"),
              path_ +
                  ":3: [[rules]] #1: attributes: db: expected a glob (*, ?, [...]), got "
                  "\"[z-a]\" (the range z-a is empty)");
    EXPECT_EQ(fileErrorOf(rule + "attributes = { db = 5 }\n"),
              path_ + ":3: [[rules]] #1: attributes: db: expected a glob, got 5");
    EXPECT_EQ(fileErrorOf(rule + "attributes = \"db\"\n"),
              path_ +
                  ":3: [[rules]] #1: attributes: expected a table of attribute names and globs "
                  "({ db = \"shop*\" }), got \"db\"");
    for (std::string ratio : {"0", "1.5", "-0.1", "nan"}) {
        EXPECT_EQ(fileErrorOf(rule + "ratio = " + ratio + "\n"),
                  path_ + ":3: [[rules]] #1: ratio: expected a number > 0 and <= 1, got " + ratio);
    }
    EXPECT_EQ(fileErrorOf(rule + "ratio = \"1%\"\n"),
              path_ + ":3: [[rules]] #1: ratio: expected a number > 0 and <= 1, got \"1%\"");
    EXPECT_EQ(fileErrorOf(rule + "min_duration = \"soon\"\n"),
              path_ +
                  ":3: [[rules]] #1: min_duration: expected a duration >= 0: seconds, or a "
                  "string with a unit such as \"500ms\", \"2s\", \"1m\", got \"soon\"");
    EXPECT_EQ(fileErrorOf(rule + "min_duration = -1\n"),
              path_ +
                  ":3: [[rules]] #1: min_duration: expected a duration >= 0: seconds, or a "
                  "string with a unit such as \"500ms\", \"2s\", \"1m\", got -1");
    EXPECT_EQ(fileErrorOf(rule + "name = 7\n"),
              path_ + ":3: [[rules]] #1: name: expected a string, got 7");
}

TEST_F(ConfigTest, BadRuleActionsAreNamed) {
    EXPECT_EQ(fileErrorOf("[agent]\nservice = \"x\"\n\n[[rules]]\nname = \"all\"\nusers = \"x\"\n"),
              path_ +
                  ":4: [[rules]] #1 \"all\": missing key actions: expected a non-empty list of "
                  "\"log\", \"profile\", \"exception\"");
    EXPECT_EQ(fileErrorOf("[[rules]]\nactions = []\n"),
              path_ +
                  ":2: [[rules]] #1: actions: expected a non-empty list of \"log\", \"profile\", "
                  "\"exception\", got []");
    EXPECT_EQ(fileErrorOf("[[rules]]\nactions = [\"log\", \"exceptions\"]\n"),
              path_ +
                  ":2: [[rules]] #1: actions: expected a non-empty list of \"log\", \"profile\", "
                  "\"exception\", got \"exceptions\" (did you mean \"exception\"?)");
    EXPECT_EQ(fileErrorOf("[[rules]]\nactions = [\"trace\"]\n"),
              path_ +
                  ":2: [[rules]] #1: actions: expected a non-empty list of \"log\", \"profile\", "
                  "\"exception\", got \"trace\"");
}

TEST_F(ConfigTest, RulesAreAnArrayOfTables) {
    EXPECT_EQ(fileErrorOf("[[rule]]\nactions = [\"log\"]\n"),
              path_ + ":1: unknown key [[rule]] (did you mean [[rules]]?)");
    EXPECT_EQ(fileErrorOf("[[state]]\nactions = [\"log\"]\n"),
              path_ + ":1: unknown key [[state]] (the only array is [[rules]])");
    EXPECT_EQ(fileErrorOf("[rules]\nactions = [\"log\"]\n"),
              path_ + ":1: [[rules]]: expected an array of tables, got a table [rules]");
    EXPECT_EQ(fileErrorOf("rules = 3\n"),
              path_ + ":1: [[rules]]: expected an array of tables, got 3");
    EXPECT_EQ(fileErrorOf("[rule]\nactions = [\"log\"]\n"),
              path_ + ":2: unknown key [rule] actions (did you mean [[rules]]?)");
}

TEST_F(ConfigTest, TheFirstProblemAmongRulesIsReported) {
    EXPECT_EQ(fileErrorOf("[[rules]]\nratio = 2\nactions = [\"log\"]\n[[rules]]\nratio = 3\n"),
              path_ + ":2: [[rules]] #1: ratio: expected a number > 0 and <= 1, got 2");
    EXPECT_EQ(fileErrorOf("[[rules]]\nactions = [\"log\"]\nusers = 1\n[state]\nmax_requests = 0\n"),
              path_ +
                  ":3: [[rules]] #1: users: expected a user name or a non-empty list of user "
                  "names, got 1");
}

TEST_F(ConfigTest, RulesComeOnlyFromTheFile) {
    env_["VIGIL_RULES"] = "anything";  // not a variable of the table: never read
    write("[[rules]]\nusers = \"admin\"\nactions = [\"log\"]\n");
    EXPECT_EQ(load(path_).rules.size(), 1u);
    AgentConfig config;
    EXPECT_EQ(thrownBy([&] { applyOverride(config, "rules", "[]", "vigil.start()"); }),
              "vigil.start(): unknown key \"rules\"");
}

TEST_F(ConfigTest, ValidationChecksTheRules) {
    AgentConfig config;
    config.rules.resize(2);
    config.rules[0].actions = kLog;
    config.rules[1].name = "bad";
    EXPECT_EQ(thrownBy([&] { validateAgentConfig(config, "vigil.start()"); }),
              "vigil.start(): [[rules]] #2 \"bad\": actions: expected a non-empty list of "
              "\"log\", \"profile\", \"exception\", got none");
    config.rules[1].actions = kProfile;
    config.rules[1].requests = {"x[", "y"};
    EXPECT_EQ(thrownBy([&] { validateAgentConfig(config, "vigil.start()"); }),
              "vigil.start(): [[rules]] #2 \"bad\": requests: expected a glob (*, ?, [...]), got "
              "\"x[\" (unclosed [ at character 2)");
    config.rules[1].requests.clear();
    config.rules[1].ratio = 0;
    EXPECT_EQ(thrownBy([&] { validateAgentConfig(config, "vigil.start()"); }),
              "vigil.start(): [[rules]] #2 \"bad\": ratio: expected a number > 0 and <= 1, got 0");
    config.rules[1].ratio = 1;
    validateAgentConfig(config, "vigil.start()");
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
