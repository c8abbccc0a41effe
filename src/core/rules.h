// The rules of the configuration ([[rules]], docs/configuration.md), compiled
// for the request hot path: at its begin, which actions a request may get
// (so that a profile can start); at its end, which of them hold (duration,
// failure). No Python headers: the agent passes names and values as text.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config.h"

namespace vigil {

// An fnmatch-style pattern: `*` any text (dots and slashes too), `?` one
// character, `[abc]` `[a-z]` `[!a-z]` (or `[^a-z]`) one character of a class,
// `\` takes the next character literally. Case-sensitive; characters are
// UTF-8 code points (a byte that is not UTF-8 is a character of its own).
class Glob {
  public:
    // The compiled pattern, or nothing with problem set ("unclosed [").
    static std::optional<Glob> compile(std::string_view pattern, std::string& problem);

    bool matches(std::string_view text) const;

  private:
    // Patterns with no `?` or class and at most a leading and a trailing `*`
    // are plain string operations; kGeneral walks the tokens.
    enum class Kind : uint8_t { kExact, kPrefix, kSuffix, kInfix, kAny, kGeneral };
    enum class TokenType : uint8_t { kLiteral, kStar, kOne, kClass, kNotClass };
    struct Token {
        TokenType type;
        uint32_t begin;   // kLiteral: in literals_; kClass: in ranges_
        uint32_t length;  // bytes of literal, or ranges of the class
    };
    struct Range {
        char32_t low, high;
    };
    class Parser;

    bool matchesGeneral(std::string_view text) const;
    bool step(const Token& token, std::string_view text, size_t& position) const;
    bool inClass(const Token& token, char32_t c) const;
    void classify();

    Kind kind_ = Kind::kGeneral;
    std::string literal_;  // the fast paths' text, unescaped
    std::string literals_;
    std::vector<Token> tokens_;
    std::vector<Range> ranges_;
};

// What the rules decided when a request began.
struct RuleDecision {
    uint8_t actions = 0;  // actions some matching rule may grant (Action bits)
    // Per action (index: kLog 0, kProfile 1, kException 2): the smallest
    // min_duration among the matching rules granting it; 0 = none.
    int64_t minDurationNs[3] = {0, 0, 0};
};

// Immutable once compiled: begin and end may run on any number of threads at
// once, and a reload compiles a new set rather than changing this one.
class RuleSet {
  public:
    using Attribute = std::pair<std::string_view, std::string_view>;

    // The rules of config in order, plus, with [exceptions] keep, one that
    // keeps every crash. Throws ConfigError for a rule that validation would
    // refuse (a bad glob, no action).
    static RuleSet compile(const AgentConfig& config);

    // At the request's begin; allocates nothing. draw: a uniform random
    // 64-bit value, a fresh one per request. A rule with a ratio matches when
    // draw < ratio * 2^64; every rule sees the same draw, so a rule of 1%
    // keeps a subset of what a rule of 10% keeps (a profiled request is also
    // logged when both sample).
    RuleDecision begin(std::string_view name, std::string_view user,
                       std::span<const Attribute> attributes, uint64_t draw) const;

    // At the end: the actions that hold, given the duration and whether the
    // request failed (kException holds only if it did).
    static uint8_t end(const RuleDecision& decision, int64_t durationNs, bool failed);

    size_t size() const { return rules_.size(); }

  private:
    struct Rule {
        std::vector<std::string> users;  // sorted; empty = any
        std::vector<Glob> requests;      // empty = any
        std::vector<std::pair<std::string, Glob>> attributes;
        bool sampled = false;  // then draw < threshold
        uint64_t threshold = 0;
        uint8_t actions = 0;
        int64_t minDurationNs = 0;
    };

    static Rule compileRule(const RuleConfig& config, size_t number);
    static bool matches(const Rule& rule, std::string_view name, std::string_view user,
                        std::span<const Attribute> attributes, uint64_t draw);
    static bool adds(const Rule& rule, const RuleDecision& decision);
    static void grant(const Rule& rule, RuleDecision& decision);

    std::vector<Rule> rules_;
};

// One step of splitmix64: a good source of draws from a per-thread state
// seeded at random (and seeded again after fork, so that parent and child do
// not sample alike).
inline uint64_t splitMix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

}  // namespace vigil
