// The agent's configuration. Layers, each beating the one before: the
// built-in defaults, a TOML file, VIGIL_<SECTION>_<KEY> environment
// variables, then vigil.start(**overrides). Every key is one row of the
// table in config.cpp: the TOML parsing, the environment variable names, the
// checks and docs/configuration.md all follow from that row, so adding a key
// is adding a row (and its field below).
#pragma once

#include <csignal>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace vigil {

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
    // [state]
    std::string stateDir = "/dev/shm";
    int maxRequests = 1024;
    // [requests]
    std::string header = "X-Vigil-Transaction";

    bool operator==(const AgentConfig&) const = default;
};

enum class ConfigType { kString, kBool, kSeconds, kCount, kSignal };

// Where a key lives in AgentConfig and what its values may be.
struct ConfigField {
    ConfigType type;
    std::variant<std::string AgentConfig::*, bool AgentConfig::*, double AgentConfig::*,
                 int AgentConfig::*>
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

// Defaults, then the TOML file at path (none when empty), then the
// environment through getenv. Throws ConfigError with one line naming the
// file and line (or the variable), the key, what is wrong and what is
// expected.
AgentConfig loadAgentConfig(const std::string& path,
                            const std::function<const char*(const char*)>& getenv = ::getenv);

// Applies one override given as text, key spelled "section.key" or
// "section_key" (vigil.start(**overrides)); origin starts the error messages.
// Call validateAgentConfig once all overrides are in.
void applyOverride(AgentConfig& config, std::string_view key, std::string_view value,
                   std::string_view origin);

// The checks of every key on the values stored, and those between keys (the
// two signals must differ). Throws ConfigError starting with origin.
void validateAgentConfig(const AgentConfig& config, std::string_view origin);

// The reference table of docs/configuration.md: section, key, environment
// variable, type, default, meaning.
std::string configReferenceMarkdown();

}  // namespace vigil
