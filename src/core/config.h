// The agent's configuration. Layers, each beating the one before: the
// built-in defaults, a TOML file, VIGIL_<SECTION>_<KEY> environment
// variables, then vigil.start(**overrides). Every key is one row of the
// table in config.cpp: the TOML parsing, the environment variable names, the
// checks and docs/configuration.md all follow from that row, so adding a key
// is adding a row (and its field below).
#pragma once

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace vigil {

// What a rule keeps of a request it matches (bits; see rules.h).
enum Action : uint8_t { kLog = 1, kProfile = 2, kException = 4 };

// One [[rules]] table of the file. A criterion left empty matches every
// request; a rule matches when every criterion it names does.
struct RuleConfig {
    std::string name;                   // a label for messages; "" = none
    std::vector<std::string> users;     // the user is one of these; empty = any
    std::vector<std::string> requests;  // globs, one of which matches the name; empty = any
    // key -> glob: every key is an attribute of the request, its value matching.
    std::vector<std::pair<std::string, std::string>> attributes;
    double ratio = 1.0;        // the share of matching requests kept, 0 < ratio <= 1
    double minDuration = 0.0;  // seconds a request must last for the actions to hold
    uint8_t actions = 0;       // Action bits; never 0 in a valid rule

    bool operator==(const RuleConfig&) const = default;
};

// Each default below must equal the default text of its row in the table (a
// test checks it), so that AgentConfig{} is the configuration of no file.
struct AgentConfig {
    // [agent]
    std::string service;  // the name in the log lines; "" = the program name
    bool enabled = true;
    // [log]
    std::string logPath;  // the agent's JSON-lines log file; "" = none
    std::string logger;   // a stdlib logging logger that also gets the lines; "" = none
    // [long_requests]
    bool longRequests = true;
    double threshold = 2.0;  // seconds before a running request is logged
    double interval = 2.0;   // seconds between further logs of the same request
    // [signals]: signal numbers, 0 = off
    int requestsSignal = SIGUSR1;
    int stacksSignal = SIGUSR2;
    int reloadSignal = SIGHUP;
    // [state]
    std::string stateDir = "/dev/shm";
    int maxRequests = 1024;
    // [requests]
    std::string header = "X-Vigil-Transaction";
    // [request_log]
    std::string requestLogPath;  // one JSON line per request a `log` action keeps; "" = none
    // [profile]
    int profileRate = 100;  // Hz at which a profiled request's thread is sampled
    // [store]
    // The embedded SQLite store; "" = none. "~" stays as written here and is
    // expanded by loadAgentConfig (and applyOverride), with $HOME then.
    std::string storeDir = "~/.local/state/vigil";
    double storeMaxAge = 7 * 86400.0;         // seconds a record is kept
    int64_t storeMaxSize = int64_t{1} << 30;  // bytes
    int storeQueue = 10000;                   // records waiting for the writer thread
    // [trace]: the execution recorder (vigil.trace)
    std::vector<std::string> tracePackages;  // module names; none (and no paths): no recording
    std::vector<std::string> tracePaths;     // globs on file paths
    std::string traceDir = "~/.local/state/vigil/trace";
    bool traceCreateDir = false;              // false: record only when traceDir exists already
    int64_t traceMaxSize = int64_t{1} << 30;  // bytes per process
    // [exceptions]
    bool keepExceptions = true;  // an implicit rule keeping every crash
    int maxRepr = 200;           // characters of each local's repr
    // [[rules]]: from the file only, in file order.
    std::vector<RuleConfig> rules;

    bool operator==(const AgentConfig&) const = default;
};

// kPath: a string in which a leading "~" is the home directory. kDuration:
// seconds, or text with a unit ("15m"). kBytes: bytes, or text with a unit
// ("500MB"). kNames: a list of strings, comma-separated in an environment
// variable.
enum class ConfigType {
    kString,
    kPath,
    kBool,
    kSeconds,
    kDuration,
    kCount,
    kBytes,
    kSignal,
    kNames
};

// Where a key lives in AgentConfig and what its values may be.
struct ConfigField {
    ConfigType type;
    std::variant<std::string AgentConfig::*, bool AgentConfig::*, double AgentConfig::*,
                 int AgentConfig::*, int64_t AgentConfig::*,
                 std::vector<std::string> AgentConfig::*>
        member;
    int min = 0;  // kCount only: the accepted range
    int max = 0;
};

struct ConfigKey {
    std::string_view section;
    std::string_view key;
    ConfigField field;
    std::string_view defaultText;  // written as in an environment variable
    std::string_view doc;          // one line, for docs/configuration.md
};

// Every key, in documentation order.
std::span<const ConfigKey> configKeys();

// VIGIL_<SECTION>_<KEY>, upper case.
std::string configEnvName(const ConfigKey& key);

// Defaults, then the TOML file at path (none when empty, and the only source
// of [[rules]]), then the environment through getenv; last, "~" in paths
// becomes $HOME (through getenv too). Throws ConfigError with one line naming the
// file and line (or the variable), the key, what is wrong and what is
// expected.
AgentConfig loadAgentConfig(const std::string& path,
                            const std::function<const char*(const char*)>& getenv = ::getenv);

// Applies one override given as text, key spelled "section.key" or
// "section_key" (vigil.start(**overrides)); origin starts the error messages.
// Call validateAgentConfig once all overrides are in.
void applyOverride(AgentConfig& config, std::string_view key, std::string_view value,
                   std::string_view origin);

// The checks of every key on the values stored, those between keys (the two
// signals must differ) and those of every rule. Throws ConfigError starting with origin.
void validateAgentConfig(const AgentConfig& config, std::string_view origin);

// "[[rules]] #N" (index + 1) and the rule's name if it has one: how every
// message about a rule names it.
std::string ruleLabel(size_t index, const RuleConfig& rule);

// The reference table of docs/configuration.md: section, key, environment
// variable, type, default, meaning.
std::string configReferenceMarkdown();

}  // namespace vigil
