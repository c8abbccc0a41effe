#include "core/rules.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {
namespace {

// The code point at text[position], moving position past it. A byte that
// does not start a valid sequence is one character of its own, U+DC00 + byte
// (Python's surrogateescape), so that every text still matches somehow.
char32_t nextChar(std::string_view text, size_t& position) {
    auto lead = static_cast<unsigned char>(text[position]);
    if (lead < 0x80) {
        ++position;
        return lead;
    }
    int extra = 0;  // continuation bytes; 0: not a lead byte
    if (lead >= 0xc2 && lead < 0xe0) extra = 1;
    if (lead >= 0xe0 && lead < 0xf0) extra = 2;
    if (lead >= 0xf0 && lead < 0xf5) extra = 3;
    bool valid = extra > 0 && position + extra < text.size();
    char32_t c = lead & (0x3f >> extra);
    for (int i = 1; valid && i <= extra; ++i) {
        auto next = static_cast<unsigned char>(text[position + i]);
        valid = (next & 0xc0) == 0x80;
        c = (c << 6) | (next & 0x3f);
    }
    if (!valid) {
        ++position;
        return 0xdc00 + lead;
    }
    position += 1 + extra;
    return c;
}

}  // namespace

// Turns the text of a pattern into tokens; the first problem stops it.
class Glob::Parser {
  public:
    Parser(std::string_view pattern, Glob& glob) : pattern_(pattern), glob_(glob) {}

    bool run(std::string& problem) {
        while (position_ < pattern_.size() && problem_.empty()) token();
        problem = problem_;
        return problem_.empty();
    }

  private:
    void token() {
        char c = pattern_[position_];
        if (c == '*') {
            ++position_;
            // "**" is "*": one token keeps the backtracking linear.
            if (glob_.tokens_.empty() || glob_.tokens_.back().type != TokenType::kStar) {
                glob_.tokens_.push_back({TokenType::kStar, 0, 0});
            }
        } else if (c == '?') {
            ++position_;
            glob_.tokens_.push_back({TokenType::kOne, 0, 0});
        } else if (c == '[') {
            characterClass();
        } else {
            literal();
        }
    }

    // One character, escaped or not; false (and a problem) at a lone "\" at the end.
    bool escapedChar(char32_t& c) {
        if (pattern_[position_] == '\\' && ++position_ == pattern_.size()) {
            problem_ = "a lone \\ at the end";
            return false;
        }
        c = nextChar(pattern_, position_);
        return true;
    }

    void literal() {
        char32_t c;
        size_t begin = position_ + (pattern_[position_] == '\\');
        if (!escapedChar(c)) return;
        auto& tokens = glob_.tokens_;
        if (tokens.empty() || tokens.back().type != TokenType::kLiteral) {
            tokens.push_back(
                {TokenType::kLiteral, static_cast<uint32_t>(glob_.literals_.size()), 0});
        }
        glob_.literals_.append(pattern_.substr(begin, position_ - begin));
        tokens.back().length += static_cast<uint32_t>(position_ - begin);
    }

    // "[" ... "]": "!" or "^" first negates, "]" first is a member, "a-z" a range.
    void characterClass() {
        size_t open = position_++;
        bool negated = position_ < pattern_.size() &&
                       (pattern_[position_] == '!' || pattern_[position_] == '^');
        position_ += negated;
        Token token{negated ? TokenType::kNotClass : TokenType::kClass,
                    static_cast<uint32_t>(glob_.ranges_.size()), 0};
        for (bool first = true;; first = false) {
            if (position_ >= pattern_.size()) {
                problem_ = fmt::format("unclosed [ at character {}", open + 1);
                return;
            }
            if (pattern_[position_] == ']' && !first) break;
            if (!range()) return;
            ++token.length;
        }
        ++position_;
        glob_.tokens_.push_back(token);
    }

    bool range() {
        size_t begin = position_;
        char32_t low, high;
        if (!escapedChar(low)) return false;
        high = low;
        bool isRange = position_ + 1 < pattern_.size() && pattern_[position_] == '-' &&
                       pattern_[position_ + 1] != ']';
        if (isRange) {
            ++position_;
            if (!escapedChar(high)) return false;
        }
        if (high < low) {
            problem_ =
                fmt::format("the range {} is empty", pattern_.substr(begin, position_ - begin));
            return false;
        }
        glob_.ranges_.push_back({low, high});
        return true;
    }

    std::string_view pattern_;
    Glob& glob_;
    size_t position_ = 0;
    std::string problem_;
};

std::optional<Glob> Glob::compile(std::string_view pattern, std::string& problem) {
    Glob glob;
    if (!Parser(pattern, glob).run(problem)) return std::nullopt;
    glob.classify();
    return glob;
}

void Glob::classify() {
    std::string shape;
    for (const Token& token : tokens_) {
        shape += token.type == TokenType::kStar      ? '*'
                 : token.type == TokenType::kLiteral ? 'L'
                                                     : '?';
    }
    if (shape.find('?') != std::string::npos) return;  // kGeneral
    static constexpr std::pair<std::string_view, Kind> kShapes[] = {
        {"", Kind::kExact},    {"L", Kind::kExact},   {"*", Kind::kAny},
        {"L*", Kind::kPrefix}, {"*L", Kind::kSuffix}, {"*L*", Kind::kInfix},
    };
    for (auto [known, kind] : kShapes) {
        if (shape != known) continue;
        kind_ = kind;
        literal_ = literals_;
    }
}

bool Glob::matches(std::string_view text) const {
    switch (kind_) {
        case Kind::kExact:
            return text == literal_;
        case Kind::kPrefix:
            return text.starts_with(literal_);
        case Kind::kSuffix:
            return text.ends_with(literal_);
        case Kind::kInfix:
            return text.find(literal_) != std::string_view::npos;
        case Kind::kAny:
            return true;
        case Kind::kGeneral:
            break;
    }
    return matchesGeneral(text);
}

// The classic wildcard walk: on a mismatch, the last "*" takes one more
// character and the tokens after it start again. Going back to that star
// alone is enough (an earlier star could only take what the last one can),
// so the cost is at most tokens x characters, with no recursion.
bool Glob::matchesGeneral(std::string_view text) const {
    size_t token = 0, position = 0;
    size_t starToken = tokens_.size(), starPosition = 0;
    for (;;) {
        if (token < tokens_.size()) {
            if (tokens_[token].type == TokenType::kStar) {
                starToken = token++;
                starPosition = position;
                continue;
            }
            size_t next = position;
            if (step(tokens_[token], text, next)) {
                position = next;
                ++token;
                continue;
            }
        } else if (position == text.size()) {
            return true;
        }
        if (starToken == tokens_.size() || starPosition >= text.size()) return false;
        nextChar(text, starPosition);
        position = starPosition;
        token = starToken + 1;
    }
}

bool Glob::step(const Token& token, std::string_view text, size_t& position) const {
    if (token.type == TokenType::kLiteral) {
        std::string_view literal(literals_.data() + token.begin, token.length);
        if (text.substr(position, literal.size()) != literal) return false;
        position += literal.size();
        return true;
    }
    if (position >= text.size()) return false;
    char32_t c = nextChar(text, position);
    if (token.type == TokenType::kOne) return true;
    return inClass(token, c) != (token.type == TokenType::kNotClass);
}

bool Glob::inClass(const Token& token, char32_t c) const {
    const Range* begin = ranges_.data() + token.begin;
    return std::any_of(begin, begin + token.length,
                       [c](const Range& range) { return c >= range.low && c <= range.high; });
}

RuleSet RuleSet::compile(const AgentConfig& config) {
    RuleSet set;
    for (size_t i = 0; i < config.rules.size(); ++i) {
        set.rules_.push_back(compileRule(config.rules[i], i));
    }
    if (config.keepExceptions) {
        Rule crashes;  // no criterion: every request, kept if it fails
        crashes.actions = kException;
        set.rules_.push_back(std::move(crashes));
    }
    return set;
}

namespace {

Glob compiledGlob(const std::string& pattern, const std::string& label) {
    std::string problem;
    std::optional<Glob> glob = Glob::compile(pattern, problem);
    if (!glob) throw ConfigError(fmt::format("{}: bad glob \"{}\": {}", label, pattern, problem));
    return std::move(*glob);
}

int64_t nanoseconds(double seconds) {
    double ns = std::round(seconds * 1e9);
    // Beyond 292 years every request is shorter anyway.
    if (ns >= 9.2e18) return std::numeric_limits<int64_t>::max();
    return static_cast<int64_t>(ns);
}

}  // namespace

RuleSet::Rule RuleSet::compileRule(const RuleConfig& config, size_t index) {
    std::string label = ruleLabel(index, config);
    if (config.actions == 0 || (config.actions & ~(kLog | kProfile | kException))) {
        throw ConfigError(fmt::format("{}: actions: expected log, profile or exception", label));
    }
    if (!(config.ratio > 0 && config.ratio <= 1)) {
        throw ConfigError(fmt::format("{}: ratio: expected 0 < ratio <= 1", label));
    }
    if (!(config.minDuration >= 0)) {
        throw ConfigError(fmt::format("{}: min_duration: expected seconds >= 0", label));
    }
    Rule rule;
    rule.users = config.users;
    std::sort(rule.users.begin(), rule.users.end());
    for (const std::string& pattern : config.requests) {
        rule.requests.push_back(compiledGlob(pattern, label));
    }
    for (const auto& [key, pattern] : config.attributes) {
        rule.attributes.emplace_back(key, compiledGlob(pattern, label));
    }
    // ratio * 2^64 is below 2^64 when ratio < 1: the threshold fits, and
    // P(draw < threshold) is the ratio to double precision.
    rule.sampled = config.ratio < 1;
    rule.threshold = rule.sampled ? static_cast<uint64_t>(std::ldexp(config.ratio, 64)) : 0;
    rule.actions = config.actions;
    rule.minDurationNs = nanoseconds(config.minDuration);
    return rule;
}

RuleDecision RuleSet::begin(std::string_view name, std::string_view user,
                            std::span<const Attribute> attributes, uint64_t draw) const {
    RuleDecision decision;
    for (const Rule& rule : rules_) {
        // Testing whether a rule could change anything is cheaper than matching it.
        if (adds(rule, decision) && matches(rule, name, user, attributes, draw)) {
            grant(rule, decision);
        }
    }
    return decision;
}

bool RuleSet::matches(const Rule& rule, std::string_view name, std::string_view user,
                      std::span<const Attribute> attributes, uint64_t draw) {
    // The cheapest criteria first.
    if (rule.sampled && draw >= rule.threshold) return false;
    if (!rule.users.empty() &&
        !std::binary_search(rule.users.begin(), rule.users.end(), user, std::less<>())) {
        return false;
    }
    if (!rule.requests.empty() &&
        std::none_of(rule.requests.begin(), rule.requests.end(),
                     [name](const Glob& glob) { return glob.matches(name); })) {
        return false;
    }
    for (const auto& [key, glob] : rule.attributes) {
        auto found = std::find_if(attributes.begin(), attributes.end(),
                                  [&key](const Attribute& a) { return a.first == key; });
        if (found == attributes.end() || !glob.matches(found->second)) return false;
    }
    return true;
}

bool RuleSet::adds(const Rule& rule, const RuleDecision& decision) {
    for (int i = 0; i < 3; ++i) {
        if (!(rule.actions & (1 << i))) continue;
        if (!(decision.actions & (1 << i))) return true;
        if (rule.minDurationNs < decision.minDurationNs[i]) return true;
    }
    return false;
}

void RuleSet::grant(const Rule& rule, RuleDecision& decision) {
    for (int i = 0; i < 3; ++i) {
        auto bit = static_cast<uint8_t>(1 << i);
        if (!(rule.actions & bit)) continue;
        bool first = !(decision.actions & bit);
        decision.actions |= bit;
        int64_t& minimum = decision.minDurationNs[i];
        minimum = first ? rule.minDurationNs : std::min(minimum, rule.minDurationNs);
    }
}

uint8_t RuleSet::end(const RuleDecision& decision, int64_t durationNs, bool failed) {
    uint8_t held = 0;
    for (int i = 0; i < 3; ++i) {
        auto bit = static_cast<uint8_t>(1 << i);
        if ((decision.actions & bit) && durationNs >= decision.minDurationNs[i]) held |= bit;
    }
    if (!failed) held &= static_cast<uint8_t>(~kException);
    return held;
}

}  // namespace vigil
