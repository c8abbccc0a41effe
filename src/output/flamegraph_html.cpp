#include "output/flamegraph_html.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "output/flamegraph_template.h"

namespace vigil {
namespace {

using nlohmann::json;

// The page's frame kinds; written as numbers to keep the data small.
int kindCode(FrameKind kind) {
    switch (kind) {
        case FrameKind::kThread:
            return 1;
        case FrameKind::kProcess:
            return 2;
        default:
            return 0;
    }
}

// The root is not a frame; the page calls it "all".
constexpr int kRootFrame = -1;

struct Visit {
    NodeId node;
    uint32_t depth;
};

bool drawnBefore(const Profile& profile, NodeId a, NodeId b) {
    const ProfileNode& left = profile.nodes()[a];
    const ProfileNode& right = profile.nodes()[b];
    if (left.total != right.total) return left.total > right.total;
    // Ties broken by what the frames say, not by when they were first seen,
    // so the same samples always give the same page.
    const ProfileFrame& leftFrame = profile.frames()[left.frame];
    const ProfileFrame& rightFrame = profile.frames()[right.frame];
    const StringTable& strings = profile.strings();
    int byName = strings.get(leftFrame.name).compare(strings.get(rightFrame.name));
    if (byName != 0) return byName < 0;
    int byFile = strings.get(leftFrame.file).compare(strings.get(rightFrame.file));
    if (byFile != 0) return byFile < 0;
    return leftFrame.line < rightFrame.line;
}

// Heaviest first: the order the page lays children out, left to right.
std::vector<NodeId> childrenInDrawingOrder(const Profile& profile, NodeId parent) {
    std::vector<NodeId> children;
    for (NodeId child = profile.nodes()[parent].firstChild; child != 0;
         child = profile.nodes()[child].nextSibling) {
        children.push_back(child);
    }
    std::sort(children.begin(), children.end(),
              [&](NodeId a, NodeId b) { return drawnBefore(profile, a, b); });
    return children;
}

// Depth first, so that a node's subtree is the contiguous run after it: the
// page then finds children, skips culled subtrees and sums matches without
// building any tree of its own. Iterative: Python stacks can be deep.
std::vector<Visit> nodesInPageOrder(const Profile& profile) {
    std::vector<Visit> order;
    order.reserve(profile.nodes().size());
    std::vector<Visit> pending{{Profile::kRoot, 0}};
    while (!pending.empty()) {
        Visit visit = pending.back();
        pending.pop_back();
        order.push_back(visit);
        std::vector<NodeId> children = childrenInDrawingOrder(profile, visit.node);
        for (auto child = children.rbegin(); child != children.rend(); ++child) {
            pending.push_back({*child, visit.depth + 1});
        }
    }
    return order;
}

// Frames and strings renumbered in order of first use, so the page carries
// only what the tree refers to (the string table also holds thread names and
// the like that a flame graph never shows).
class PageTables {
  public:
    explicit PageTables(const Profile& profile) : profile_(profile) {}

    int frame(FrameId id) {
        auto [entry, inserted] = frameIds_.try_emplace(id, static_cast<int>(frameIds_.size()));
        if (inserted) appendFrame(profile_.frames()[id]);
        return entry->second;
    }

    json stringsJson() const { return strings_; }
    json framesJson() const {
        return {{"name", names_}, {"file", files_}, {"line", lines_}, {"kind", kinds_}};
    }

  private:
    int string(StringId id) {
        auto [entry, inserted] = stringIds_.try_emplace(id, static_cast<int>(strings_.size()));
        if (inserted) strings_.push_back(profile_.strings().get(id));
        return entry->second;
    }

    void appendFrame(const ProfileFrame& frame) {
        names_.push_back(string(frame.name));
        files_.push_back(string(frame.file));
        lines_.push_back(frame.line);
        kinds_.push_back(kindCode(frame.kind));
    }

    const Profile& profile_;
    std::unordered_map<FrameId, int> frameIds_;
    std::unordered_map<StringId, int> stringIds_;
    std::vector<std::string> strings_;
    std::vector<int> names_, files_, lines_, kinds_;
};

// Parallel arrays rather than an object per node: at 100,000 nodes the
// difference is several megabytes and a much faster JSON.parse. Only self
// counts are sent (mostly 0); the page sums the totals back up.
json profileJson(const Profile& profile) {
    PageTables tables(profile);
    std::vector<int> frames;
    std::vector<uint32_t> depths;
    std::vector<uint64_t> selfCounts;
    for (const Visit& visit : nodesInPageOrder(profile)) {
        const ProfileNode& node = profile.nodes()[visit.node];
        frames.push_back(visit.node == Profile::kRoot ? kRootFrame : tables.frame(node.frame));
        depths.push_back(visit.depth);
        selfCounts.push_back(node.self);
    }
    return {
        {"version", 1},
        {"strings", tables.stringsJson()},
        {"frames", tables.framesJson()},
        {"nodes", {{"frame", frames}, {"depth", depths}, {"self", selfCounts}}},
    };
}

// Inside a <script> element, "</script>" or "<!--" in a string would end or
// derail it. '<' only ever occurs inside JSON strings, where \u003c is the
// same character, so escaping every one is both safe and lossless.
std::string jsonForScript(const json& value) {
    std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
    std::string escaped;
    escaped.reserve(text.size());
    for (char c : text) {
        if (c == '<') {
            escaped += "\\u003c";
        } else {
            escaped += c;
        }
    }
    return escaped;
}

std::string escapeHtml(std::string_view text) {
    std::string escaped;
    escaped.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&':
                escaped += "&amp;";
                break;
            case '<':
                escaped += "&lt;";
                break;
            case '>':
                escaped += "&gt;";
                break;
            case '"':
                escaped += "&quot;";
                break;
            case '\'':
                escaped += "&#39;";
                break;
            default:
                escaped += c;
        }
    }
    return escaped;
}

std::string_view pageTemplate() {
    return {reinterpret_cast<const char*>(embedded::kFlameGraphTemplate),
            sizeof(embedded::kFlameGraphTemplate)};
}

// Writes the template with each {{NAME}} replaced by its value. One pass over
// the template only, so a value that itself contains "{{TITLE}}" (a title is
// the profiled command line) is written as it is.
void expandTemplate(std::string_view page, const std::map<std::string_view, std::string>& values,
                    std::ostream& out) {
    size_t written = 0;
    for (size_t open = page.find("{{"); open != std::string_view::npos;
         open = page.find("{{", open + 2)) {
        size_t close = page.find("}}", open + 2);
        if (close == std::string_view::npos) break;
        auto value = values.find(page.substr(open + 2, close - open - 2));
        if (value == values.end()) continue;
        out << page.substr(written, open - written) << value->second;
        written = close + 2;
        open = close;
    }
    out << page.substr(written);
}

}  // namespace

void writeFlameGraphHtml(const Profile& profile, const FlameGraphOptions& options,
                         std::ostream& out) {
    std::string title = options.title.empty() ? "vigil flame graph" : options.title;
    expandTemplate(pageTemplate(),
                   {
                       {"TITLE", escapeHtml(title)},
                       {"SUBTITLE", escapeHtml(options.subtitle)},
                       {"PROFILE_JSON", jsonForScript(profileJson(profile))},
                   },
                   out);
}

}  // namespace vigil
