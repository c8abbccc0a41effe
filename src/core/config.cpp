#include "core/config.h"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "core/errors.h"
#include "core/rules.h"

namespace vigil {
namespace {

constexpr ConfigField text(std::string AgentConfig::*member) {
    return {ConfigType::kString, member};
}
constexpr ConfigField path(std::string AgentConfig::*member) {
    return {ConfigType::kPath, member};
}
constexpr ConfigField flag(bool AgentConfig::*member) {
    return {ConfigType::kBool, member};
}
constexpr ConfigField seconds(double AgentConfig::*member) {
    return {ConfigType::kSeconds, member};
}
constexpr ConfigField duration(double AgentConfig::*member) {
    return {ConfigType::kDuration, member};
}
constexpr ConfigField count(int AgentConfig::*member, int min, int max) {
    return {ConfigType::kCount, member, min, max};
}
constexpr ConfigField bytes(int64_t AgentConfig::*member) {
    return {ConfigType::kBytes, member};
}
constexpr ConfigField signalNumber(int AgentConfig::*member) {
    return {ConfigType::kSignal, member};
}
constexpr ConfigField names(std::vector<std::string> AgentConfig::*member) {
    return {ConfigType::kNames, member};
}

// The one place a key is declared. One row each; the default is written as
// it would be in an environment variable.
// clang-format off
constexpr ConfigKey kKeys[] = {
    {"agent", "service", text(&AgentConfig::service), "", "Name of the service in the log lines; empty: the program name"},
    {"agent", "enabled", flag(&AgentConfig::enabled), "true", "Whether the agent starts at all"},
    {"log", "path", text(&AgentConfig::logPath), "", "JSON-lines log file of the agent; empty: no file"},
    {"log", "logger", text(&AgentConfig::logger), "", "Python `logging` logger that also gets the lines; empty: none"},
    {"long_requests", "enabled", flag(&AgentConfig::longRequests), "true", "Whether requests that run too long are logged with their stack"},
    {"long_requests", "threshold", seconds(&AgentConfig::threshold), "2.0", "Seconds a request runs before it is logged"},
    {"long_requests", "interval", seconds(&AgentConfig::interval), "2.0", "Seconds between further logs of the same request"},
    {"signals", "requests", signalNumber(&AgentConfig::requestsSignal), "SIGUSR1", "Signal that logs the running requests; \"off\": none"},
    {"signals", "stacks", signalNumber(&AgentConfig::stacksSignal), "SIGUSR2", "Signal that logs the stack of every thread; \"off\": none"},
    {"signals", "reload", signalNumber(&AgentConfig::reloadSignal), "SIGHUP", "Signal that reads the rules again and reopens the log files (logrotate); \"off\": none"},
    {"state", "dir", text(&AgentConfig::stateDir), "/dev/shm", "Directory of the live shared-memory state file that `vigil` reads"},
    {"state", "max_requests", count(&AgentConfig::maxRequests, 1, 65536), "1024", "Slots of the table of running requests"},
    {"requests", "header", text(&AgentConfig::header), "X-Vigil-Transaction", "Response header in which the middlewares return the transaction id"},
    {"request_log", "path", path(&AgentConfig::requestLogPath), "", "JSON-lines file with one line per request that a `log` rule keeps; empty: none"},
    {"profile", "rate", count(&AgentConfig::profileRate, 1, 1000), "100", "Samples per second of the thread of a request that a `profile` rule follows"},
    {"store", "dir", path(&AgentConfig::storeDir), "~/.local/state/vigil", "Directory of the embedded SQLite store of kept requests; empty: no store"},
    {"store", "max_age", duration(&AgentConfig::storeMaxAge), "7d", "How long the store keeps a request"},
    {"store", "max_size", bytes(&AgentConfig::storeMaxSize), "1GB", "Largest size of the store; the oldest requests go first"},
    {"store", "queue", count(&AgentConfig::storeQueue, 1, 1000000), "10000", "Kept requests that may wait for the store's writer thread"},
    {"trace", "packages", names(&AgentConfig::tracePackages), "", "Packages (module names) whose execution `vigil.trace` records line by line; none, and no paths: no recording"},
    {"trace", "paths", names(&AgentConfig::tracePaths), "", "Files (globs on their paths) whose execution is recorded too"},
    {"trace", "dir", path(&AgentConfig::traceDir), "~/.local/state/vigil/trace", "Directory of the execution traces: a run per start, `latest` links to the newest"},
    {"trace", "create_dir", flag(&AgentConfig::traceCreateDir), "false", "Whether the agent creates `dir` to record; false: it records only when `dir` exists (make it to turn recording on for the processes that start afterwards)"},
    {"trace", "max_size", bytes(&AgentConfig::traceMaxSize), "1GB", "Largest size of a process's trace; the oldest segments go first"},
    {"exceptions", "keep", flag(&AgentConfig::keepExceptions), "true", "Whether every request that fails is kept with its exception (an implicit rule)"},
    {"exceptions", "max_repr", count(&AgentConfig::maxRepr, 20, 10000), "200", "Characters kept of the repr of each local variable of an exception"},
};
// clang-format on

// One value as a source gives it: text from the environment or
// vigil.start() may still be of any type, a TOML value has its own.
struct Input {
    enum Kind { kText, kString, kBool, kInteger, kFloat, kList, kOther } kind = kText;
    std::string text;                // kText and kString; for kOther, what it is ("an array")
    std::vector<std::string> items;  // kList: an array of strings
    bool boolean = false;
    int64_t integer = 0;
    double number = 0;
};

Input textInput(std::string_view text) {
    Input input;
    input.text = text;
    return input;
}

// The problem with a value, or nothing.
using Problem = std::optional<std::string>;

// Errors are one line: control characters are escaped.
std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string describe(const Input& input) {
    switch (input.kind) {
        case Input::kText:
        case Input::kString:
            return quoted(input.text);
        case Input::kBool:
            return input.boolean ? "true" : "false";
        case Input::kInteger:
            return std::to_string(input.integer);
        case Input::kFloat:
            return fmt::format("{}", input.number);
        case Input::kList: {
            std::vector<std::string> quotedItems;
            for (const std::string& item : input.items) quotedItems.push_back(quoted(item));
            return fmt::format("[{}]", fmt::join(quotedItems, ", "));
        }
        case Input::kOther:
            return input.text;
    }
    return {};
}

std::string expectation(const ConfigField& field) {
    switch (field.type) {
        case ConfigType::kString:
        case ConfigType::kPath:
            return "a string";
        case ConfigType::kBool:
            return "true or false";
        case ConfigType::kSeconds:
            return "a number of seconds > 0";
        case ConfigType::kDuration:
            return "a duration > 0: seconds, or a string with a unit such as \"30s\", \"15m\", "
                   "\"12h\", \"7d\"";
        case ConfigType::kBytes:
            return "a size > 0: bytes, or a string with a unit such as \"64KB\", \"500MB\", "
                   "\"1GB\"";
        case ConfigType::kCount:
            return fmt::format("an integer from {} to {}", field.min, field.max);
        case ConfigType::kSignal:
            return "a signal name (SIGUSR1 or USR1), a signal number, or \"off\"";
        case ConfigType::kNames:
            return "a list of strings (in an environment variable: separated by commas)";
    }
    return {};
}

Problem mismatch(const ConfigField& field, const Input& input, std::string_view detail = {}) {
    std::string problem = fmt::format("expected {}, got {}", expectation(field), describe(input));
    if (!detail.empty()) problem += fmt::format(" ({})", detail);
    return problem;
}

std::string_view trimmed(std::string_view text) {
    const char* space = " \t\r\n";
    size_t begin = text.find_first_not_of(space);
    if (begin == std::string_view::npos) return {};
    return text.substr(begin, text.find_last_not_of(space) + 1 - begin);
}

std::string upperCase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    return out;
}

std::optional<bool> parseBool(std::string_view text) {
    std::string word = upperCase(trimmed(text));
    // Python's str(True) is "True": vigil.start(enabled=False) arrives so.
    if (word == "TRUE" || word == "YES" || word == "ON" || word == "1") return true;
    if (word == "FALSE" || word == "NO" || word == "OFF" || word == "0") return false;
    return std::nullopt;
}

template <typename T>
std::optional<T> parseNumber(std::string_view text) {
    text = trimmed(text);
    T value{};
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

std::string lowerCase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    return out;
}

// "1.5 GB" -> {"1.5", "gb"}: the unit is the trailing run of letters.
std::pair<std::string_view, std::string> splitUnit(std::string_view text) {
    text = trimmed(text);
    size_t unit = text.size();
    while (unit > 0 && std::isalpha(static_cast<unsigned char>(text[unit - 1]))) --unit;
    return {text.substr(0, unit), lowerCase(text.substr(unit))};
}

template <size_t N>
std::optional<double> unitFactor(std::string_view unit,
                                 const std::pair<std::string_view, double> (&units)[N]) {
    for (const auto& [name, factor] : units) {
        if (name == unit) return factor;
    }
    return std::nullopt;
}

// Seconds, from "90", "1.5", "500ms", "30s", "15m", "12h" or "7d"; >= 0.
std::optional<double> parseDuration(std::string_view text) {
    static constexpr std::pair<std::string_view, double> kUnits[] = {
        {"", 1}, {"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    auto [number, unit] = splitUnit(text);
    std::optional<double> factor = unitFactor(unit, kUnits);
    std::optional<double> value = parseNumber<double>(number);
    if (!factor || !value || !std::isfinite(*value) || *value < 0) return std::nullopt;
    return *value * *factor;
}

// Bytes, from "1073741824", "64KB", "500 MB", "1.5GiB": K, M, G and T are
// powers of 1024, with or without B, with or without i; >= 1.
std::optional<int64_t> parseBytes(std::string_view text) {
    static constexpr std::pair<std::string_view, double> kUnits[] = {
        {"", 1},         {"b", 1},       {"k", 0x1p10},   {"kb", 0x1p10},  {"kib", 0x1p10},
        {"m", 0x1p20},   {"mb", 0x1p20}, {"mib", 0x1p20}, {"g", 0x1p30},   {"gb", 0x1p30},
        {"gib", 0x1p30}, {"t", 0x1p40},  {"tb", 0x1p40},  {"tib", 0x1p40},
    };
    auto [number, unit] = splitUnit(text);
    std::optional<double> factor = unitFactor(unit, kUnits);
    // An integer alone stays exact beyond 2^53.
    if (unit.empty()) {
        if (auto exact = parseNumber<int64_t>(number); exact && *exact >= 1) return exact;
    }
    std::optional<double> value = parseNumber<double>(number);
    if (!factor || !value) return std::nullopt;
    double size = std::floor(*value * *factor);
    if (!(size >= 1 && size < 0x1p63)) return std::nullopt;
    return static_cast<int64_t>(size);
}

struct SignalName {
    std::string_view name;
    int number;
};

constexpr SignalName kSignalNames[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

std::string signalName(int number) {
    for (const SignalName& signal : kSignalNames) {
        if (signal.number == number) return fmt::format("SIG{}", signal.name);
    }
    if (number >= SIGRTMIN && number <= SIGRTMAX) {
        return number == SIGRTMIN ? "SIGRTMIN" : fmt::format("SIGRTMIN+{}", number - SIGRTMIN);
    }
    return fmt::format("signal {}", number);
}

// "USR1", "SIGUSR1", "sigusr1", "12", "SIGRTMIN+3", "off" (0). Nothing, with
// detail set, when the text names no signal.
std::optional<int64_t> parseSignal(std::string_view text, std::string& detail) {
    std::string name = upperCase(trimmed(text));
    if (name.empty() || name == "OFF") return 0;
    if (auto number = parseNumber<int64_t>(name)) return number;
    if (name.starts_with("SIG")) name.erase(0, 3);
    for (const SignalName& signal : kSignalNames) {
        if (signal.name == name) return signal.number;
    }
    // Real-time signals: their numbers depend on the C library.
    for (auto [base, sign] : {std::pair{"RTMIN", 1}, std::pair{"RTMAX", -1}}) {
        std::string_view rest = std::string_view(name);
        if (!rest.starts_with(base)) continue;
        rest.remove_prefix(std::strlen(base));
        int64_t origin = sign > 0 ? SIGRTMIN : SIGRTMAX;
        if (rest.empty()) return origin;
        if (rest[0] != (sign > 0 ? '+' : '-')) break;
        if (auto offset = parseNumber<int64_t>(rest.substr(1))) return origin + sign * *offset;
        break;
    }
    detail = "not a signal name";
    return std::nullopt;
}

// Why a signal cannot trigger the agent's logs, or nothing.
Problem signalRefusal(int64_t number) {
    if (number < 1 || number > SIGRTMAX) return std::string("not a signal number");
    int signal = static_cast<int>(number);
    if (signal == SIGKILL || signal == SIGSTOP) {
        return fmt::format("{} cannot be caught", signalName(signal));
    }
    // The agent's fault-safe memory reads rely on these.
    if (signal == SIGSEGV || signal == SIGBUS || signal == SIGILL || signal == SIGFPE) {
        return fmt::format("{} is for faults", signalName(signal));
    }
    if (signal > SIGSYS && signal < SIGRTMIN) return std::string("reserved by the C library");
    return std::nullopt;
}

Problem storeString(const ConfigField& field, const Input& input, AgentConfig& config) {
    if (input.kind != Input::kText && input.kind != Input::kString) return mismatch(field, input);
    config.*std::get<std::string AgentConfig::*>(field.member) = input.text;
    return std::nullopt;
}

Problem storeDuration(const ConfigField& field, const Input& input, AgentConfig& config) {
    std::optional<double> value;
    if (input.kind == Input::kInteger) value = static_cast<double>(input.integer);
    if (input.kind == Input::kFloat) value = input.number;
    if (input.kind == Input::kText || input.kind == Input::kString) {
        value = parseDuration(input.text);
    }
    if (!value || !std::isfinite(*value) || *value <= 0) return mismatch(field, input);
    config.*std::get<double AgentConfig::*>(field.member) = *value;
    return std::nullopt;
}

Problem storeBytes(const ConfigField& field, const Input& input, AgentConfig& config) {
    std::optional<int64_t> value;
    if (input.kind == Input::kInteger && input.integer >= 1) value = input.integer;
    // TOML writes 1e9 as a float.
    if (input.kind == Input::kFloat && input.number >= 1 && input.number < 0x1p63) {
        value = static_cast<int64_t>(input.number);
    }
    if (input.kind == Input::kText || input.kind == Input::kString) value = parseBytes(input.text);
    if (!value) return mismatch(field, input);
    config.*std::get<int64_t AgentConfig::*>(field.member) = *value;
    return std::nullopt;
}

Problem storeBool(const ConfigField& field, const Input& input, AgentConfig& config) {
    std::optional<bool> value;
    if (input.kind == Input::kBool) value = input.boolean;
    if (input.kind == Input::kText) value = parseBool(input.text);
    if (!value) return mismatch(field, input);
    config.*std::get<bool AgentConfig::*>(field.member) = *value;
    return std::nullopt;
}

Problem storeSeconds(const ConfigField& field, const Input& input, AgentConfig& config) {
    std::optional<double> value;
    // TOML writes 2 for 2.0: integers are accepted where seconds are.
    if (input.kind == Input::kInteger) value = static_cast<double>(input.integer);
    if (input.kind == Input::kFloat) value = input.number;
    if (input.kind == Input::kText) value = parseNumber<double>(input.text);
    if (!value || !std::isfinite(*value) || *value <= 0) return mismatch(field, input);
    config.*std::get<double AgentConfig::*>(field.member) = *value;
    return std::nullopt;
}

Problem storeCount(const ConfigField& field, const Input& input, AgentConfig& config) {
    std::optional<int64_t> value;
    if (input.kind == Input::kInteger) value = input.integer;
    if (input.kind == Input::kText) value = parseNumber<int64_t>(input.text);
    if (!value || *value < field.min || *value > field.max) return mismatch(field, input);
    config.*std::get<int AgentConfig::*>(field.member) = static_cast<int>(*value);
    return std::nullopt;
}

Problem storeSignal(const ConfigField& field, const Input& input, AgentConfig& config) {
    std::optional<int64_t> number;
    std::string detail;
    if (input.kind == Input::kInteger) number = input.integer;
    if (input.kind == Input::kText || input.kind == Input::kString) {
        number = parseSignal(input.text, detail);
    }
    if (!number) return mismatch(field, input, detail);
    if (*number != 0) {
        if (Problem refusal = signalRefusal(*number)) return mismatch(field, input, *refusal);
    }
    config.*std::get<int AgentConfig::*>(field.member) = static_cast<int>(*number);
    return std::nullopt;
}

std::vector<std::string> splitNames(std::string_view text) {
    std::vector<std::string> names;
    for (std::string_view rest = text; !rest.empty();) {
        size_t comma = std::min(rest.find(','), rest.size());
        std::string_view item = trimmed(rest.substr(0, comma));
        if (!item.empty()) names.emplace_back(item);
        rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
    return names;
}

// A TOML array of strings, one string, or text with commas between names.
Problem storeNames(const ConfigField& field, const Input& input, AgentConfig& config) {
    std::vector<std::string> values;
    if (input.kind == Input::kList) {
        values = input.items;
    } else if (input.kind == Input::kString) {
        values.push_back(input.text);
    } else if (input.kind == Input::kText) {
        values = splitNames(input.text);
    } else {
        return mismatch(field, input);
    }
    if (std::ranges::any_of(values, [](const std::string& value) { return value.empty(); }))
        return mismatch(field, input, "an empty name");
    config.*std::get<std::vector<std::string> AgentConfig::*>(field.member) = std::move(values);
    return std::nullopt;
}

Problem store(const ConfigField& field, const Input& input, AgentConfig& config) {
    switch (field.type) {
        case ConfigType::kString:
        case ConfigType::kPath:
            return storeString(field, input, config);
        case ConfigType::kBool:
            return storeBool(field, input, config);
        case ConfigType::kSeconds:
            return storeSeconds(field, input, config);
        case ConfigType::kDuration:
            return storeDuration(field, input, config);
        case ConfigType::kCount:
            return storeCount(field, input, config);
        case ConfigType::kBytes:
            return storeBytes(field, input, config);
        case ConfigType::kSignal:
            return storeSignal(field, input, config);
        case ConfigType::kNames:
            return storeNames(field, input, config);
    }
    return std::string("unknown type");
}

void storeOrThrow(const ConfigKey& key, const Input& input, std::string_view where,
                  AgentConfig& config) {
    if (Problem problem = store(key.field, input, config)) {
        throw ConfigError(fmt::format("{}: [{}] {}: {}", where, key.section, key.key, *problem));
    }
}

// A stored value as an input, so that checking it is storing it again.
Input storedInput(const AgentConfig& config, const ConfigField& field) {
    Input input;
    std::visit(
        [&](auto member) {
            const auto& value = config.*member;
            using Value = std::decay_t<decltype(value)>;
            if constexpr (std::is_same_v<Value, std::string>) {
                input.kind = Input::kString;
                input.text = value;
            } else if constexpr (std::is_same_v<Value, std::vector<std::string>>) {
                input.kind = Input::kList;
                input.items = value;
            } else if constexpr (std::is_same_v<Value, bool>) {
                input.kind = Input::kBool;
                input.boolean = value;
            } else if constexpr (std::is_same_v<Value, double>) {
                input.kind = Input::kFloat;
                input.number = value;
            } else {
                input.kind = Input::kInteger;
                input.integer = value;
            }
        },
        field.member);
    return input;
}

// The checks between keys. where names the origins of the values.
void checkCombinations(const AgentConfig& config, std::string_view where) {
    const std::pair<std::string_view, int> signals[] = {{"requests", config.requestsSignal},
                                                        {"stacks", config.stacksSignal},
                                                        {"reload", config.reloadSignal}};
    for (size_t first = 0; first < std::size(signals); ++first) {
        for (size_t second = first + 1; second < std::size(signals); ++second) {
            if (signals[first].second == 0 || signals[first].second != signals[second].second)
                continue;
            throw ConfigError(fmt::format(
                "{}: [signals] {} and {}: expected different signals, got {} for both", where,
                signals[first].first, signals[second].first, signalName(signals[first].second)));
        }
    }
}

const ConfigKey* findKey(std::string_view section, std::string_view key) {
    for (const ConfigKey& candidate : kKeys) {
        if (candidate.section == section && candidate.key == key) return &candidate;
    }
    return nullptr;
}

size_t keyIndex(std::string_view section, std::string_view key) {
    return static_cast<size_t>(findKey(section, key) - kKeys);
}

bool knownSection(std::string_view section) {
    return std::any_of(std::begin(kKeys), std::end(kKeys),
                       [&](const ConfigKey& key) { return key.section == section; });
}

std::vector<std::string> sectionNames() {
    std::vector<std::string> names;
    for (const ConfigKey& key : kKeys) {
        if (std::find(names.begin(), names.end(), key.section) == names.end()) {
            names.emplace_back(key.section);
        }
    }
    return names;
}

size_t editDistance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// The candidate a typo of word most likely meant, or nothing.
std::optional<std::string> closest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
    std::optional<std::string> best;
    size_t bestDistance = SIZE_MAX;
    for (const std::string& candidate : candidates) {
        size_t distance = editDistance(word, candidate);
        if (distance <= std::max<size_t>(1, candidate.size() / 3) && distance < bestDistance) {
            best = candidate;
            bestDistance = distance;
        }
    }
    return best;
}

// For a key outside any known section: the section that has it, if any.
std::string sectionHint(std::string_view section, std::string_view key) {
    if (!section.empty() && closest(section, {"rules"})) return " (did you mean [[rules]]?)";
    if (auto guess = closest(section, sectionNames())) {
        return fmt::format(" (did you mean [{}]?)", *guess);
    }
    for (const ConfigKey& candidate : kKeys) {
        if (candidate.key == key) {
            return fmt::format(" (did you mean [{}] {}?)", candidate.section, candidate.key);
        }
    }
    std::string sections;
    for (const std::string& name : sectionNames()) {
        sections += fmt::format("{}[{}]", sections.empty() ? "" : ", ", name);
    }
    return fmt::format(" (the sections are {})", sections);
}

std::string keyHint(std::string_view section, std::string_view key) {
    std::vector<std::string> keys;
    for (const ConfigKey& candidate : kKeys) {
        if (candidate.section == section) keys.emplace_back(candidate.key);
    }
    if (auto guess = closest(key, keys)) return fmt::format(" (did you mean {}?)", *guess);
    return fmt::format(" (the keys of [{}] are {})", section, fmt::join(keys, ", "));
}

std::string readWholeFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    std::string content;
    int error = fd < 0 ? errno : 0;
    char buffer[8192];
    while (!error) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) error = errno;
        if (n <= 0) break;
        content.append(buffer, static_cast<size_t>(n));
    }
    if (fd >= 0) ::close(fd);
    if (error) {
        throw ConfigError(
            fmt::format("{}: cannot read the configuration file: {}", path, std::strerror(error)));
    }
    return content;
}

Input inputOf(const toml::node& node) {
    Input input;
    if (const auto* value = node.as_string()) {
        input.kind = Input::kString;
        input.text = value->get();
    } else if (const auto* value = node.as_boolean()) {
        input.kind = Input::kBool;
        input.boolean = value->get();
    } else if (const auto* value = node.as_integer()) {
        input.kind = Input::kInteger;
        input.integer = value->get();
    } else if (const auto* value = node.as_floating_point()) {
        input.kind = Input::kFloat;
        input.number = value->get();
    } else if (const auto* array = node.as_array();
               array && (array->empty() || array->is_homogeneous<std::string>())) {
        input.kind = Input::kList;
        for (const toml::node& item : *array) input.items.push_back(item.as_string()->get());
    } else {
        input.kind = Input::kOther;
        input.text = node.is_array() ? "an array" : node.is_table() ? "a table" : "a date or time";
    }
    return input;
}

// [[rules]]: one row per key of a rule, as kKeys is for the sections. read
// takes the TOML value (its type); check looks at the stored value, so that
// validateAgentConfig applies the same checks to rules built in code.
struct RuleKey {
    std::string_view key;
    Problem (*read)(const toml::node& node, RuleConfig& rule);
    Problem (*check)(const RuleConfig& rule);
};

constexpr std::string_view kActionsExpected =
    R"(a non-empty list of "log", "profile", "exception")";

Problem noCheck(const RuleConfig&) {
    return std::nullopt;
}

Problem expected(std::string_view what, const toml::node& node) {
    return fmt::format("expected {}, got {}", what, describe(inputOf(node)));
}

// A string, or a non-empty array of strings.
Problem readStrings(const toml::node& node, std::vector<std::string>& out, std::string_view what) {
    out.clear();
    if (const auto* one = node.as_string()) {
        out.push_back(one->get());
        return std::nullopt;
    }
    const toml::array* array = node.as_array();
    if (!array || array->empty()) return expected(what, node);
    for (const toml::node& element : *array) {
        if (!element.is_string()) return expected(what, element);
        out.push_back(element.as_string()->get());
    }
    return std::nullopt;
}

Problem globProblem(const std::string& pattern) {
    std::string problem;
    if (Glob::compile(pattern, problem)) return std::nullopt;
    return fmt::format("expected a glob (*, ?, [...]), got {} ({})", quoted(pattern), problem);
}

Problem readName(const toml::node& node, RuleConfig& rule) {
    if (!node.is_string()) return expected("a string", node);
    rule.name = node.as_string()->get();
    return std::nullopt;
}

Problem readUsers(const toml::node& node, RuleConfig& rule) {
    return readStrings(node, rule.users, "a user name or a non-empty list of user names");
}

Problem readRequests(const toml::node& node, RuleConfig& rule) {
    return readStrings(node, rule.requests, "a glob or a non-empty list of globs");
}

Problem checkRequests(const RuleConfig& rule) {
    for (const std::string& pattern : rule.requests) {
        if (Problem problem = globProblem(pattern)) return problem;
    }
    return std::nullopt;
}

Problem readAttributes(const toml::node& node, RuleConfig& rule) {
    const toml::table* table = node.as_table();
    constexpr std::string_view kWhat = R"(a table of attribute names and globs ({ db = "shop*" }))";
    if (!table) return expected(kWhat, node);
    rule.attributes.clear();
    for (const auto& [key, value] : *table) {
        if (!value.is_string()) {
            return fmt::format("{}: expected a glob, got {}", key.str(), describe(inputOf(value)));
        }
        rule.attributes.emplace_back(key.str(), value.as_string()->get());
    }
    return std::nullopt;
}

Problem checkAttributes(const RuleConfig& rule) {
    for (const auto& [key, pattern] : rule.attributes) {
        if (Problem problem = globProblem(pattern)) return fmt::format("{}: {}", key, *problem);
    }
    return std::nullopt;
}

constexpr std::string_view kRatioExpected = "a number > 0 and <= 1";

Problem readRatio(const toml::node& node, RuleConfig& rule) {
    if (!node.is_number()) return expected(kRatioExpected, node);
    rule.ratio = node.value<double>().value_or(0);
    return std::nullopt;
}

Problem checkRatio(const RuleConfig& rule) {
    if (rule.ratio > 0 && rule.ratio <= 1) return std::nullopt;
    return fmt::format("expected {}, got {}", kRatioExpected, rule.ratio);
}

constexpr std::string_view kMinDurationExpected =
    R"(a duration >= 0: seconds, or a string with a unit such as "500ms", "2s", "1m")";

Problem readMinDuration(const toml::node& node, RuleConfig& rule) {
    Input input = inputOf(node);
    std::optional<double> value;
    if (input.kind == Input::kInteger) value = static_cast<double>(input.integer);
    if (input.kind == Input::kFloat) value = input.number;
    if (input.kind == Input::kString) value = parseDuration(input.text);
    if (!value) return expected(kMinDurationExpected, node);
    rule.minDuration = *value;
    return std::nullopt;
}

Problem checkMinDuration(const RuleConfig& rule) {
    if (std::isfinite(rule.minDuration) && rule.minDuration >= 0) return std::nullopt;
    return fmt::format("expected {}, got {}", kMinDurationExpected, rule.minDuration);
}

constexpr std::pair<std::string_view, Action> kActionNames[] = {
    {"log", kLog}, {"profile", kProfile}, {"exception", kException}};

Problem unknownAction(const std::string& name) {
    std::vector<std::string> names;
    for (auto [known, action] : kActionNames) names.emplace_back(known);
    auto guess = closest(name, names);
    return fmt::format("expected {}, got {}{}", kActionsExpected, quoted(name),
                       guess ? fmt::format(" (did you mean {}?)", quoted(*guess)) : "");
}

Problem readActions(const toml::node& node, RuleConfig& rule) {
    std::vector<std::string> names;
    if (Problem problem = readStrings(node, names, kActionsExpected)) return problem;
    rule.actions = 0;
    for (const std::string& name : names) {
        auto known = std::find_if(std::begin(kActionNames), std::end(kActionNames),
                                  [&](const auto& action) { return action.first == name; });
        if (known == std::end(kActionNames)) return unknownAction(name);
        rule.actions |= known->second;
    }
    return std::nullopt;
}

Problem checkActions(const RuleConfig& rule) {
    if (rule.actions != 0 && (rule.actions & ~(kLog | kProfile | kException)) == 0) {
        return std::nullopt;
    }
    return fmt::format("expected {}, got {}", kActionsExpected,
                       rule.actions == 0 ? "none" : fmt::format("the bits {:#x}", rule.actions));
}

constexpr RuleKey kRuleKeys[] = {
    {"name", readName, noCheck},
    {"users", readUsers, noCheck},
    {"requests", readRequests, checkRequests},
    {"attributes", readAttributes, checkAttributes},
    {"ratio", readRatio, checkRatio},
    {"min_duration", readMinDuration, checkMinDuration},
    {"actions", readActions, checkActions},
};

const RuleKey* findRuleKey(std::string_view key) {
    for (const RuleKey& row : kRuleKeys) {
        if (row.key == key) return &row;
    }
    return nullptr;
}

std::string ruleKeyHint(std::string_view key) {
    std::vector<std::string> keys;
    for (const RuleKey& row : kRuleKeys) keys.emplace_back(row.key);
    if (auto guess = closest(key, keys)) return fmt::format(" (did you mean {}?)", *guess);
    return fmt::format(" (the keys of a rule are {})", fmt::join(keys, ", "));
}

void checkRules(const AgentConfig& config, std::string_view where) {
    for (size_t i = 0; i < config.rules.size(); ++i) {
        for (const RuleKey& row : kRuleKeys) {
            if (Problem problem = row.check(config.rules[i])) {
                throw ConfigError(fmt::format("{}: {}: {}: {}", where,
                                              ruleLabel(i, config.rules[i]), row.key, *problem));
            }
        }
    }
}

// The home directory: $HOME, else the user's entry in the password database
// (a daemon may run without HOME).
std::optional<std::string> homeDirectory(const std::function<const char*(const char*)>& getenv) {
    const char* home = getenv("HOME");
    if (home && *home) return std::string(home);
    passwd entry{};
    passwd* found = nullptr;
    char buffer[4096];
    if (getpwuid_r(::getuid(), &entry, buffer, sizeof buffer, &found) == 0 && found &&
        found->pw_dir && *found->pw_dir) {
        return std::string(found->pw_dir);
    }
    return std::nullopt;
}

// "~" and "~/..." become the home directory; other paths stay as they are.
void expandHome(const ConfigKey& key, AgentConfig& config, std::string_view where,
                const std::function<const char*(const char*)>& getenv) {
    std::string& value = config.*std::get<std::string AgentConfig::*>(key.field.member);
    if (value != "~" && !value.starts_with("~/")) return;
    std::optional<std::string> home = homeDirectory(getenv);
    if (!home) {
        throw ConfigError(fmt::format("{}: [{}] {}: cannot expand ~ in {}: HOME is not set", where,
                                      key.section, key.key, quoted(value)));
    }
    if (home->size() > 1 && home->ends_with('/')) home->pop_back();
    value.replace(0, 1, *home);
}

// Reads a parsed file into config. toml++ keeps keys sorted, not in file
// order: the problem reported is the one on the first line, as a reader of
// the file would expect.
class FileReader {
  public:
    FileReader(const std::string& path, AgentConfig& config, std::vector<std::string>& origins)
        : path_(path), config_(config), origins_(origins) {}

    void read(const toml::table& root) {
        for (const auto& [name, node] : root) {
            const toml::table* section = node.as_table();
            if (name.str() == "rules") {
                readRules(name, node);
            } else if (node.is_array_of_tables()) {
                unknownArray(name);
            } else if (!knownSection(name.str())) {
                unknownSection(name, section);
            } else if (!section) {
                fail(name, fmt::format("expected a section [{}], got {}", name.str(),
                                       describe(inputOf(node))));
            } else {
                readSection(name.str(), *section);
            }
        }
        if (failure_) throw ConfigError(failure_->message);
    }

  private:
    struct Failure {
        uint32_t line;
        std::string message;
    };

    std::string where(const toml::source_region& source) const {
        if (source.begin.line == 0) return path_;
        return fmt::format("{}:{}", path_, source.begin.line);
    }

    void fail(const toml::key& key, const std::string& problem) { fail(key.source(), problem); }

    void fail(const toml::source_region& source, const std::string& problem) {
        uint32_t line = source.begin.line;
        if (failure_ && failure_->line <= line) return;
        failure_ = Failure{line, fmt::format("{}: {}", where(source), problem)};
    }

    void unknownArray(const toml::key& name) {
        bool rules = closest(name.str(), {"rules"}).has_value();
        fail(name,
             fmt::format("unknown key [[{}]]{}", name.str(),
                         rules ? " (did you mean [[rules]]?)" : " (the only array is [[rules]])"));
    }

    void readRules(const toml::key& name, const toml::node& node) {
        const toml::array* array = node.as_array();
        if (!array || !(array->empty() || array->is_array_of_tables())) {
            fail(name, fmt::format("[[rules]]: expected an array of tables, got {}",
                                   node.is_table() ? "a table [rules]" : describe(inputOf(node))));
            return;
        }
        for (size_t i = 0; i < array->size(); ++i) readRule(i, *array->get(i)->as_table());
    }

    void readRule(size_t index, const toml::table& table) {
        RuleConfig rule;
        // Keys come sorted: the name is needed first, for the messages.
        if (const toml::node* name = table.get("name"); name && name->is_string()) {
            rule.name = name->as_string()->get();
        }
        std::string label = ruleLabel(index, rule);
        for (const auto& [key, node] : table) {
            const RuleKey* row = findRuleKey(key.str());
            if (!row) {
                fail(key,
                     fmt::format("{}: unknown key {}{}", label, key.str(), ruleKeyHint(key.str())));
                continue;
            }
            Problem problem = row->read(node, rule);
            if (!problem) problem = row->check(rule);
            if (problem) fail(key, fmt::format("{}: {}: {}", label, key.str(), *problem));
        }
        if (!table.contains("actions")) {
            fail(table.source(),
                 fmt::format("{}: missing key actions: expected {}", label, kActionsExpected));
        }
        config_.rules.push_back(std::move(rule));
    }

    void unknownSection(const toml::key& name, const toml::table* section) {
        if (!section) {
            fail(name, fmt::format("unknown key {} outside any section{}", name.str(),
                                   sectionHint("", name.str())));
        } else if (section->empty()) {
            fail(name,
                 fmt::format("unknown section [{}]{}", name.str(), sectionHint(name.str(), "")));
        }
        if (!section) return;
        for (const auto& [key, node] : *section) {
            fail(key, fmt::format("unknown key [{}] {}{}", name.str(), key.str(),
                                  sectionHint(name.str(), key.str())));
        }
    }

    void readSection(std::string_view section, const toml::table& table) {
        for (const auto& [name, node] : table) {
            const ConfigKey* key = findKey(section, name.str());
            if (!key) {
                fail(name, fmt::format("unknown key [{}] {}{}", section, name.str(),
                                       keyHint(section, name.str())));
                continue;
            }
            if (Problem problem = store(key->field, inputOf(node), config_)) {
                fail(name, fmt::format("[{}] {}: {}", section, name.str(), *problem));
                continue;
            }
            origins_[static_cast<size_t>(key - kKeys)] = where(name.source());
        }
    }

    const std::string& path_;
    AgentConfig& config_;
    std::vector<std::string>& origins_;
    std::optional<Failure> failure_;
};

void readConfigFile(const std::string& path, AgentConfig& config,
                    std::vector<std::string>& origins) {
    std::string content = readWholeFile(path);
    toml::table root;
    try {
        root = toml::parse(content, path);
    } catch (const toml::parse_error& error) {
        std::string description(error.description());
        std::replace(description.begin(), description.end(), '\n', ' ');
        throw ConfigError(fmt::format("{}:{}: not valid TOML: {} (column {})", path,
                                      error.source().begin.line, description,
                                      error.source().begin.column));
    }
    FileReader(path, config, origins).read(root);
}

std::string origins(const std::string& first, const std::string& second) {
    return first == second ? first : fmt::format("{} and {}", first, second);
}

std::string typeName(const ConfigField& field) {
    switch (field.type) {
        case ConfigType::kString:
            return "string";
        case ConfigType::kPath:
            return "path";
        case ConfigType::kBool:
            return "boolean";
        case ConfigType::kSeconds:
            return "seconds";
        case ConfigType::kDuration:
            return "duration";
        case ConfigType::kBytes:
            return "size";
        case ConfigType::kCount:
            return fmt::format("integer, {} to {}", field.min, field.max);
        case ConfigType::kSignal:
            return "signal";
        case ConfigType::kNames:
            return "list of strings";
    }
    return {};
}

std::string markdownCell(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '|') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

std::span<const ConfigKey> configKeys() {
    return kKeys;
}

std::string configEnvName(const ConfigKey& key) {
    return fmt::format("VIGIL_{}_{}", upperCase(key.section), upperCase(key.key));
}

AgentConfig loadAgentConfig(const std::string& path,
                            const std::function<const char*(const char*)>& getenv) {
    AgentConfig config;
    std::vector<std::string> origins(std::size(kKeys), "the built-in default");
    for (const ConfigKey& key : kKeys) {
        storeOrThrow(key, textInput(key.defaultText), "the built-in default", config);
    }
    if (!path.empty()) readConfigFile(path, config, origins);
    for (size_t i = 0; i < std::size(kKeys); ++i) {
        std::string name = configEnvName(kKeys[i]);
        const char* value = getenv(name.c_str());
        if (!value) continue;
        storeOrThrow(kKeys[i], textInput(value), name, config);
        origins[i] = name;
    }
    for (size_t i = 0; i < std::size(kKeys); ++i) {
        if (kKeys[i].field.type == ConfigType::kPath)
            expandHome(kKeys[i], config, origins[i], getenv);
    }
    checkCombinations(config, vigil::origins(origins[keyIndex("signals", "requests")],
                                             origins[keyIndex("signals", "stacks")]));
    return config;
}

void applyOverride(AgentConfig& config, std::string_view name, std::string_view value,
                   std::string_view origin) {
    // The user's own spelling, for the suggestion.
    char separator = name.find('.') != std::string_view::npos ? '.' : '_';
    std::vector<std::string> spellings;
    for (const ConfigKey& key : kKeys) {
        std::string spelling = fmt::format("{}{}{}", key.section, separator, key.key);
        if (spelling == name) {
            storeOrThrow(key, textInput(value), origin, config);
            if (key.field.type == ConfigType::kPath) expandHome(key, config, origin, ::getenv);
            return;
        }
        spellings.push_back(spelling);
    }
    auto guess = closest(name, spellings);
    throw ConfigError(fmt::format("{}: unknown key {}{}", origin, quoted(name),
                                  guess ? fmt::format(" (did you mean {}?)", *guess) : ""));
}

void validateAgentConfig(const AgentConfig& config, std::string_view origin) {
    AgentConfig scratch = config;
    for (const ConfigKey& key : kKeys) {
        storeOrThrow(key, storedInput(config, key.field), origin, scratch);
    }
    checkCombinations(config, origin);
    checkRules(config, origin);
}

std::string ruleLabel(size_t index, const RuleConfig& rule) {
    std::string label = fmt::format("[[rules]] #{}", index + 1);
    if (!rule.name.empty()) label += " " + quoted(rule.name);
    return label;
}

std::string configReferenceMarkdown() {
    std::string out =
        "| section | key | environment variable | type | default | meaning |\n"
        "|---|---|---|---|---|---|\n";
    for (const ConfigKey& key : kKeys) {
        // Those written as strings in the file are quoted.
        bool text = key.field.type != ConfigType::kBool && key.field.type != ConfigType::kSeconds &&
                    key.field.type != ConfigType::kCount && key.field.type != ConfigType::kNames;
        std::string shown = text ? quoted(key.defaultText) : std::string(key.defaultText);
        if (key.field.type == ConfigType::kNames) {
            Input list;
            list.kind = Input::kList;
            list.items = splitNames(key.defaultText);
            shown = describe(list);
        }
        out += fmt::format("| `[{}]` | `{}` | `{}` | {} | `{}` | {} |\n", key.section, key.key,
                           configEnvName(key), typeName(key.field), shown, markdownCell(key.doc));
    }
    return out;
}

}  // namespace vigil
