#include "trace/replay_time.h"

#include <time.h>

#include <cmath>
#include <cstdlib>
#include <regex>
#include <string>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

[[noreturn]] void badTime(std::string_view text) {
    throw UsageError(fmt::format(
        "cannot read the time \"{}\": expected a time of day (12:00:16.55), a date and time "
        "(2025-03-14 12:00:16.55) or a distance (+2s, -300ms, +1.5min, +1h)",
        text));
}

// "55" of "16.55": nanoseconds.
int64_t fractionNs(const std::string& digits) {
    return digits.empty() ? 0 : std::stoll((digits + "000000000").substr(0, 9));
}

// The wall-clock time of a local broken-down time; tm_isdst -1 lets the
// time zone say whether summer time applies that day.
int64_t localNs(std::tm local, int64_t fraction) {
    local.tm_isdst = -1;
    time_t seconds = ::mktime(&local);
    return static_cast<int64_t>(seconds) * kSecond + fraction;
}

std::tm localTm(int64_t wallNs) {
    time_t seconds = static_cast<time_t>(wallNs / kSecond - (wallNs % kSecond < 0));
    std::tm local{};
    ::localtime_r(&seconds, &local);
    return local;
}

int64_t relativeNs(const std::smatch& match, std::string_view text) {
    static const std::pair<std::string_view, double> units[] = {
        {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"min", 60e9}, {"h", 3600e9}};
    double amount = std::strtod(match[2].str().c_str(), nullptr);
    for (const auto& [unit, ns] : units) {
        if (match[3].str() == unit) {
            double distance = amount * ns;
            if (!std::isfinite(distance) || distance > 1e18) badTime(text);
            return (match[1].str() == "-" ? -1 : 1) * std::llround(distance);
        }
    }
    badTime(text);
}

// Of the days around `aroundWallNs`, the one that puts the time of day
// nearest to it: a trace that runs past midnight replays both days.
int64_t nearestDay(std::tm timeOfDay, int64_t fraction, int64_t aroundWallNs) {
    int64_t best = 0;
    for (int day : {-1, 0, 1}) {
        std::tm candidate = timeOfDay;
        candidate.tm_mday += day;  // mktime carries it over months and years
        int64_t ns = localNs(candidate, fraction);
        if (day == -1 || std::llabs(ns - aroundWallNs) < std::llabs(best - aroundWallNs)) best = ns;
    }
    return best;
}

}  // namespace

int64_t parseJumpTime(std::string_view text, const TraceClock& clock, int64_t currentNs) {
    static const std::regex relative(R"(([+-])(\d+\.?\d*|\.\d+)(ns|us|ms|s|min|m|h))");
    static const std::regex absolute(
        R"((?:(\d{4})-(\d{2})-(\d{2})[ T])?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)");
    std::string input(text);
    std::smatch match;
    if (std::regex_match(input, match, relative)) return currentNs + relativeNs(match, text);
    if (!std::regex_match(input, match, absolute)) badTime(text);
    auto number = [&](int group) { return match[group].matched ? std::stoi(match[group]) : 0; };
    int64_t currentWall = clock.wallNs(currentNs);
    std::tm local = localTm(currentWall);
    local.tm_hour = number(4);
    local.tm_min = number(5);
    local.tm_sec = number(6);
    if (local.tm_hour > 23 || local.tm_min > 59 || local.tm_sec > 60) badTime(text);
    int64_t fraction = fractionNs(match[7]);
    if (!match[1].matched) return clock.monotonicNs(nearestDay(local, fraction, currentWall));
    local.tm_year = number(1) - 1900;
    local.tm_mon = number(2) - 1;
    local.tm_mday = number(3);
    if (local.tm_mon < 0 || local.tm_mon > 11 || local.tm_mday < 1 || local.tm_mday > 31)
        badTime(text);
    return clock.monotonicNs(localNs(local, fraction));
}

std::string isoLocalTime(int64_t wallNs) {
    std::tm local = localTm(wallNs);
    long offset = local.tm_gmtoff / 60;
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:09d}{}{:02d}:{:02d}", local,
                       (wallNs % kSecond + kSecond) % kSecond, offset < 0 ? '-' : '+',
                       std::labs(offset) / 60, std::labs(offset) % 60);
}

std::string timeOfDay(int64_t wallNs) {
    return fmt::format("{:%H:%M:%S}.{:06d}", localTm(wallNs),
                       (wallNs % kSecond + kSecond) % kSecond / 1000);
}

std::string secondsText(int64_t ns) {
    int64_t micros = std::llabs(ns) / 1000;
    return fmt::format("{}{}.{:06d}s", ns < 0 ? '-' : '+', micros / 1'000'000, micros % 1'000'000);
}

}  // namespace vigil
