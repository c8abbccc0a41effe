#include "core/rules.h"

#include <fnmatch.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/errors.h"

namespace vigil {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

using Attributes = std::vector<RuleSet::Attribute>;

bool globMatches(std::string_view pattern, std::string_view text) {
    std::string problem;
    std::optional<Glob> glob = Glob::compile(pattern, problem);
    EXPECT_TRUE(glob) << pattern << ": " << problem;
    return glob && glob->matches(text);
}

std::string globProblem(std::string_view pattern) {
    std::string problem;
    EXPECT_FALSE(Glob::compile(pattern, problem)) << pattern;
    return problem;
}

RuleConfig ruleFor(uint8_t actions) {
    RuleConfig rule;
    rule.actions = actions;
    return rule;
}

// A rule set of the rules alone: no implicit exception rule.
RuleSet compiled(std::vector<RuleConfig> rules) {
    AgentConfig config;
    config.keepExceptions = false;
    config.rules = std::move(rules);
    return RuleSet::compile(config);
}

// The actions that hold at the end of a request that lasted durationNs.
uint8_t kept(const RuleSet& rules, std::string_view name, std::string_view user,
             const Attributes& attributes = {}, int64_t durationNs = 0, bool failed = false,
             uint64_t draw = 0) {
    return RuleSet::end(rules.begin(name, user, attributes, draw), durationNs, failed);
}

TEST(RuleGlobTest, FastPathsMatchLikeFnmatch) {
    EXPECT_TRUE(globMatches("sale.order.confirm", "sale.order.confirm"));
    EXPECT_FALSE(globMatches("sale.order.confirm", "sale.order.confirmed"));
    EXPECT_TRUE(globMatches("sale.*", "sale.order.confirm"));  // "*" takes dots too
    EXPECT_TRUE(globMatches("sale.*", "sale."));
    EXPECT_FALSE(globMatches("sale.*", "sales.order"));
    EXPECT_TRUE(globMatches("*.confirm", "sale.order.confirm"));
    EXPECT_FALSE(globMatches("*.confirm", "sale.order.confirm2"));
    EXPECT_TRUE(globMatches("*order*", "sale.order.confirm"));
    EXPECT_TRUE(globMatches("*/api/*", "GET /api/users"));
    EXPECT_FALSE(globMatches("*order*", "sale.ordre"));
    EXPECT_TRUE(globMatches("*", ""));
    EXPECT_TRUE(globMatches("**", "anything/at all"));
    EXPECT_TRUE(globMatches("", ""));
    EXPECT_FALSE(globMatches("", "x"));
    EXPECT_FALSE(globMatches("Sale.*", "sale.order"));  // case-sensitive
}

TEST(RuleGlobTest, QuestionMarksClassesAndStars) {
    EXPECT_TRUE(globMatches("eu-?", "eu-1"));
    EXPECT_FALSE(globMatches("eu-?", "eu-"));
    EXPECT_FALSE(globMatches("eu-?", "eu-12"));
    EXPECT_TRUE(globMatches("v[0-9].[abc]", "v3.b"));
    EXPECT_FALSE(globMatches("v[0-9].[abc]", "v3.d"));
    EXPECT_TRUE(globMatches("[!a-c]x", "dx"));
    EXPECT_FALSE(globMatches("[!a-c]x", "bx"));
    EXPECT_TRUE(globMatches("[^a-c]x", "dx"));
    EXPECT_TRUE(globMatches("[]a]", "]"));   // "]" first is a member
    EXPECT_TRUE(globMatches("[!]a]", "b"));  // also after "!"
    EXPECT_FALSE(globMatches("[!]a]", "]"));
    EXPECT_TRUE(globMatches("[a-]", "-"));  // "-" last is a member
    EXPECT_TRUE(globMatches("a*b*c", "aXbYbZc"));
    EXPECT_FALSE(globMatches("a*b*c", "aXbYbZ"));
    EXPECT_TRUE(globMatches("*a?c*[xy]", "zzabcQQy"));
    EXPECT_TRUE(globMatches("GET /api/*/[0-9]*", "GET /api/users/42"));
    EXPECT_FALSE(globMatches("GET /api/*/[0-9]*", "GET /api/users/me"));
}

TEST(RuleGlobTest, EscapesAreLiteral) {
    EXPECT_TRUE(globMatches("\\*", "*"));
    EXPECT_FALSE(globMatches("\\*", "x"));
    EXPECT_TRUE(globMatches("what\\?", "what?"));
    EXPECT_FALSE(globMatches("what\\?", "whats"));
    EXPECT_TRUE(globMatches("\\[x]", "[x]"));
    EXPECT_TRUE(globMatches("a\\\\b", "a\\b"));
    EXPECT_TRUE(globMatches("[\\]]", "]"));
    EXPECT_TRUE(globMatches("[\\!a]", "!"));
    EXPECT_TRUE(globMatches("\\*x*", "*xyz"));  // a prefix that starts with "*"
    EXPECT_FALSE(globMatches("\\*x*", "axyz"));
    EXPECT_TRUE(globMatches("\\a", "a"));  // any character may be escaped
}

TEST(RuleGlobTest, CharactersAreCodePoints) {
    EXPECT_TRUE(globMatches("caf?", "café"));
    EXPECT_FALSE(globMatches("caf??", "café"));
    EXPECT_TRUE(globMatches("[é]t[é]", "été"));
    EXPECT_TRUE(globMatches("[à-ÿ]", "ö"));
    EXPECT_FALSE(globMatches("[!é]", "é"));
    EXPECT_TRUE(globMatches("*?", "\xff"));  // a stray byte is one character
    EXPECT_TRUE(globMatches("a?b",
                            "a\xc3"
                            "b"));  // so is a truncated sequence
}

TEST(RuleGlobTest, MalformedPatternsSayWhy) {
    EXPECT_EQ(globProblem("sale.[ab"), "unclosed [ at character 6");
    EXPECT_EQ(globProblem("[]"), "unclosed [ at character 1");
    EXPECT_EQ(globProblem("x[!]"), "unclosed [ at character 2");
    EXPECT_EQ(globProblem("[\\"), "a lone \\ at the end");
    EXPECT_EQ(globProblem("ab\\"), "a lone \\ at the end");
    EXPECT_EQ(globProblem("[z-a]"), "the range z-a is empty");
}

// Random patterns and texts over a small alphabet, against the C library:
// the general matcher's backtracking on every shape.
TEST(RuleGlobTest, AgreesWithFnmatch) {
    std::mt19937 random(7);
    const std::vector<std::string> pieces = {"a", "b", "*", "?", "[ab]", "[!a]", "\\*", "ab"};
    for (int round = 0; round < 20000; ++round) {
        std::string pattern, text;
        for (int i = random() % 6; i >= 0; --i) pattern += pieces[random() % pieces.size()];
        for (int i = random() % 8; i > 0; --i) text += "ab*"[random() % 3];
        EXPECT_EQ(globMatches(pattern, text), fnmatch(pattern.c_str(), text.c_str(), 0) == 0)
            << pattern << " vs " << text;
    }
}

TEST(RuleSetTest, SelectsByUser) {
    RuleConfig rule = ruleFor(kLog);
    rule.users = {"root", "admin"};
    RuleSet rules = compiled({rule});
    EXPECT_EQ(kept(rules, "any", "admin"), kLog);
    EXPECT_EQ(kept(rules, "any", "root"), kLog);
    EXPECT_EQ(kept(rules, "any", "adminx"), 0);
    EXPECT_EQ(kept(rules, "any", ""), 0);
}

TEST(RuleSetTest, SelectsByName) {
    RuleConfig rule = ruleFor(kLog);
    rule.requests = {"sale.order.*", "GET /api/[a-z]*"};
    RuleSet rules = compiled({rule});
    EXPECT_EQ(kept(rules, "sale.order.confirm", ""), kLog);
    EXPECT_EQ(kept(rules, "GET /api/users", "bob"), kLog);
    EXPECT_EQ(kept(rules, "GET /api/42", "bob"), 0);
    EXPECT_EQ(kept(rules, "sale.invoice", "bob"), 0);
}

TEST(RuleSetTest, SelectsByAttributes) {
    RuleConfig rule = ruleFor(kLog);
    rule.attributes = {{"db", "shop_*"}, {"region", "eu-?"}};
    RuleSet rules = compiled({rule});
    EXPECT_EQ(kept(rules, "x", "", {{"region", "eu-1"}, {"db", "shop_main"}}), kLog);
    EXPECT_EQ(kept(rules, "x", "", {{"db", "shop_main"}, {"region", "us-1"}}), 0);
    EXPECT_EQ(kept(rules, "x", "", {{"db", "shop_main"}}), 0);  // every key must be there
    EXPECT_EQ(kept(rules, "x", "", {}), 0);
    // Other attributes do not matter.
    EXPECT_EQ(kept(rules, "x", "", {{"pid", "12"}, {"db", "shop_"}, {"region", "eu-9"}}), kLog);
}

TEST(RuleSetTest, EveryCriterionMustMatch) {
    RuleConfig rule = ruleFor(kLog | kProfile);
    rule.users = {"admin"};
    rule.requests = {"report.*"};
    rule.attributes = {{"db", "prod"}};
    RuleSet rules = compiled({rule});
    Attributes prod = {{"db", "prod"}};
    EXPECT_EQ(kept(rules, "report.daily", "admin", prod), kLog | kProfile);
    EXPECT_EQ(kept(rules, "report.daily", "bob", prod), 0);
    EXPECT_EQ(kept(rules, "sale.daily", "admin", prod), 0);
    EXPECT_EQ(kept(rules, "report.daily", "admin", {{"db", "test"}}), 0);
    // A rule without criteria takes every request.
    EXPECT_EQ(kept(compiled({ruleFor(kLog)}), "x", ""), kLog);
    EXPECT_EQ(kept(compiled({}), "x", ""), 0);
}

TEST(RuleSetTest, RulesAddUp) {
    RuleConfig admins = ruleFor(kLog);
    admins.users = {"admin"};
    RuleConfig reports = ruleFor(kProfile);
    reports.requests = {"report.*"};
    RuleSet rules = compiled({admins, reports});
    EXPECT_EQ(kept(rules, "report.x", "admin"), kLog | kProfile);
    EXPECT_EQ(kept(rules, "report.x", "bob"), kProfile);
    EXPECT_EQ(kept(rules, "sale.x", "admin"), kLog);
    EXPECT_EQ(kept(rules, "sale.x", "bob"), 0);
}

TEST(RuleSetTest, MinDurationHoldsPerAction) {
    RuleConfig everyLog = ruleFor(kLog);
    RuleConfig slowProfile = ruleFor(kProfile);
    slowProfile.minDuration = 1.0;
    RuleConfig slowerLogAndProfile = ruleFor(kLog | kProfile);
    slowerLogAndProfile.minDuration = 3.0;
    RuleSet rules = compiled({slowerLogAndProfile, everyLog, slowProfile});
    RuleDecision decision = rules.begin("x", "", {}, 0);
    // The profile starts at the begin; whether it is kept is known at the end.
    EXPECT_EQ(decision.actions, kLog | kProfile);
    EXPECT_EQ(decision.minDurationNs[0], 0);
    EXPECT_EQ(decision.minDurationNs[1], kSecond);
    EXPECT_EQ(RuleSet::end(decision, kSecond / 2, false), kLog);  // profile dropped
    EXPECT_EQ(RuleSet::end(decision, kSecond, false), kLog | kProfile);
    EXPECT_EQ(RuleSet::end(decision, 5 * kSecond, false), kLog | kProfile);
}

TEST(RuleSetTest, ProfilesOfFastRequestsAreDropped) {
    RuleConfig rule = ruleFor(kProfile | kLog);
    rule.requests = {"report.*"};
    rule.minDuration = 0.2;
    RuleSet rules = compiled({rule});
    EXPECT_EQ(rules.begin("report.x", "", {}, 0).actions, kProfile | kLog);
    EXPECT_EQ(kept(rules, "report.x", "", {}, 199'999'999), 0);
    EXPECT_EQ(kept(rules, "report.x", "", {}, 200'000'000), kProfile | kLog);
    EXPECT_EQ(rules.begin("sale.x", "", {}, 0).actions, 0);  // never profiled
}

TEST(RuleSetTest, ExceptionsAreKeptByDefaultAndOnlyOnFailure) {
    AgentConfig defaults;
    RuleSet rules = RuleSet::compile(defaults);
    EXPECT_EQ(rules.size(), 1u);
    EXPECT_EQ(kept(rules, "any", "", {}, 0, true), kException);
    EXPECT_EQ(kept(rules, "any", "", {}, kSecond, false), 0);
    defaults.keepExceptions = false;
    EXPECT_EQ(kept(RuleSet::compile(defaults), "any", "", {}, 0, true), 0);
    // A rule may ask for them when the default is off.
    RuleConfig slow = ruleFor(kException);
    slow.minDuration = 1;
    defaults.rules = {slow};
    rules = RuleSet::compile(defaults);
    EXPECT_EQ(kept(rules, "any", "", {}, kSecond / 2, true), 0);
    EXPECT_EQ(kept(rules, "any", "", {}, 2 * kSecond, true), kException);
}

TEST(RuleSetTest, RatioComparesTheDraw) {
    RuleConfig half = ruleFor(kLog);
    half.ratio = 0.5;
    RuleSet rules = compiled({half});
    EXPECT_EQ(kept(rules, "x", "", {}, 0, false, 0), kLog);
    EXPECT_EQ(kept(rules, "x", "", {}, 0, false, (uint64_t{1} << 63) - 1), kLog);
    EXPECT_EQ(kept(rules, "x", "", {}, 0, false, uint64_t{1} << 63), 0);
    EXPECT_EQ(kept(compiled({ruleFor(kLog)}), "x", "", {}, 0, false, UINT64_MAX), kLog);
}

TEST(RuleSetTest, RatioKeepsItsShareWithinStatisticalBounds) {
    RuleConfig sampled = ruleFor(kLog);
    sampled.ratio = 0.01;
    RuleConfig tenth = ruleFor(kProfile);
    tenth.ratio = 0.1;
    RuleSet rules = compiled({sampled, tenth});
    constexpr int kRequests = 1'000'000;
    uint64_t state = 12345;
    int logged = 0, profiled = 0, nestedBreaks = 0;
    for (int i = 0; i < kRequests; ++i) {
        uint8_t held = kept(rules, "x", "", {}, 0, false, splitMix64(state));
        logged += (held & kLog) != 0;
        profiled += (held & kProfile) != 0;
        nestedBreaks += (held & kLog) && !(held & kProfile);
    }
    // Binomial: mean n p, standard deviation sqrt(n p (1 - p)); 5 sigma.
    for (auto [count, p] : {std::pair{logged, 0.01}, std::pair{profiled, 0.1}}) {
        double mean = kRequests * p, sigma = std::sqrt(kRequests * p * (1 - p));
        EXPECT_LT(std::abs(count - mean), 5 * sigma) << count << " of " << kRequests << " at " << p;
    }
    // One draw per request: the 1% are among the 10%.
    EXPECT_EQ(nestedBreaks, 0);
}

TEST(RuleSetTest, MatchingRulesThatAddNothingAreSkippedRight) {
    // The cheap "could this rule change anything" test must not lose a
    // smaller min_duration granted by a later rule.
    RuleConfig slow = ruleFor(kLog);
    slow.minDuration = 5;
    RuleConfig fast = ruleFor(kLog);
    fast.minDuration = 1;
    RuleConfig none = ruleFor(kLog);
    none.users = {"admin"};
    RuleSet rules = compiled({slow, fast, none});
    EXPECT_EQ(rules.begin("x", "bob", {}, 0).minDurationNs[0], kSecond);
    EXPECT_EQ(rules.begin("x", "admin", {}, 0).minDurationNs[0], 0);
}

TEST(RuleSetTest, CompileRefusesWhatValidationRefuses) {
    RuleConfig bad = ruleFor(kLog);
    bad.name = "api";
    bad.requests = {"GET /api/[x"};
    try {
        compiled({ruleFor(kLog), bad});
        ADD_FAILURE() << "no error";
    } catch (const ConfigError& error) {
        EXPECT_EQ(std::string(error.what()),
                  "[[rules]] #2 \"api\": bad glob \"GET /api/[x\": unclosed [ at character 10");
    }
    EXPECT_THROW(compiled({ruleFor(0)}), ConfigError);
    RuleConfig noRatio = ruleFor(kLog);
    noRatio.ratio = 0;
    EXPECT_THROW(compiled({noRatio}), ConfigError);
}

TEST(RuleSetTest, RulesOfTheFileSelectRequests) {
    namespace fs = std::filesystem;
    std::string path = (fs::temp_directory_path() / "vigil-rules-test.toml").string();
    std::ofstream(path) << R"(
[[rules]]
name = "slow admin reports"
users = "admin"
requests = ["report.*", "export.[a-z]*"]
min_duration = "1s"
actions = ["log", "profile"]
)";
    AgentConfig config = loadAgentConfig(path, [](const char*) { return nullptr; });
    fs::remove(path);
    RuleSet rules = RuleSet::compile(config);
    EXPECT_EQ(kept(rules, "export.csv", "admin", {}, 2 * kSecond), kLog | kProfile);
    EXPECT_EQ(kept(rules, "export.csv", "admin", {}, kSecond / 10), 0);
    EXPECT_EQ(kept(rules, "export.csv", "admin", {}, kSecond / 10, true), kException);
    EXPECT_EQ(kept(rules, "export.42", "admin", {}, 2 * kSecond), 0);
}

}  // namespace
}  // namespace vigil
