// `vigil show TXN`: what the store holds of one transaction: the request,
// its profile as a call tree, its exception with each frame's locals; with
// -o, the profile in any format `vigil record` writes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/recording.h"
#include "core/agent_state.h"
#include "core/errors.h"
#include "core/store.h"

namespace vigil::cli {
namespace {

// A branch of the call tree below this share of the samples is left out.
constexpr double kPrunePercent = 1.0;

struct ShowOptions {
    std::string txn;
    std::string store = defaultStoreDir();
    std::string output;
    std::string format = "html";
};

std::string listText(const std::vector<std::pair<std::string, std::string>>& pairs) {
    std::string text;
    for (const auto& [key, value] : pairs)
        text += fmt::format("{}{}={}", text.empty() ? "" : " ", key, value);
    return text.empty() ? "-" : text;
}

std::string outcomeText(const FinishedRequest& request) {
    if (request.httpStatus == 0) return request.outcome;
    return fmt::format("{} (HTTP {})", request.outcome, request.httpStatus);
}

std::string requestText(const FinishedRequest& request) {
    return fmt::format(
        "txn         {}\nname        {}\nuser        {}\nservice     {} (pid {}, thread {})\n"
        "started     {}\nduration    {}\ncpu         {}\noutcome     {}\nattributes  {}\n"
        "samples     {} (profile {})\n",
        request.txn, request.name, request.user.empty() ? "-" : request.user, request.service,
        request.pid, request.nativeThreadId, isoTimeUtc(request.startNs),
        durationText(request.durationNs),
        request.cpuNs < 0 ? "unknown" : durationText(request.cpuNs), outcomeText(request),
        listText(request.attributes), request.samples, request.profileKept ? "kept" : "not kept");
}

// The profile of a request: its samples as the agent folded them, and a
// timeline when a format needs one (chrome).
Profile loadProfile(const FinishedRequest& request, StringTable& strings, bool timeline) {
    Profile profile(strings, timeline);
    std::optional<FoldedTimeline> lane;
    if (timeline) {
        lane = FoldedTimeline{
            profile.track(request.txn, request.pid, request.nativeThreadId),
            std::max<int64_t>(1, request.durationNs / std::max(1u, request.samples))};
    }
    addFoldedStacks(request.profileFolded, profile, lane);
    RecordingStats& stats = profile.stats;
    stats.samples = stats.ticks = profile.totalSamples();
    stats.durationSeconds = static_cast<double>(request.durationNs) / 1e9;
    if (stats.durationSeconds > 0)
        stats.requestedHz = std::round(stats.samples / stats.durationSeconds);
    return profile;
}

std::vector<NodeId> childrenByTotal(const Profile& profile, NodeId parent) {
    std::vector<NodeId> children;
    const auto& nodes = profile.nodes();
    for (NodeId child = nodes[parent].firstChild; child; child = nodes[child].nextSibling)
        children.push_back(child);
    std::stable_sort(children.begin(), children.end(),
                     [&](NodeId a, NodeId b) { return nodes[a].total > nodes[b].total; });
    return children;
}

// Heaviest branch first, each line: total %, self %, the frame indented by
// its depth. An explicit stack: Python stacks can be thousands deep.
std::string callTreeText(const Profile& profile) {
    double total = static_cast<double>(profile.totalSamples());
    std::string text = fmt::format("profile: {} samples\n{:>7} {:>7}  FUNCTION\n",
                                   profile.totalSamples(), "TOTAL", "SELF");
    std::vector<std::pair<NodeId, size_t>> stack;  // (node, depth), next on top
    auto pushChildren = [&](NodeId parent, size_t depth) {
        std::vector<NodeId> children = childrenByTotal(profile, parent);
        for (auto child = children.rbegin(); child != children.rend(); ++child)
            stack.emplace_back(*child, depth);
    };
    pushChildren(Profile::kRoot, 0);
    size_t pruned = 0;
    while (!stack.empty()) {
        auto [node, depth] = stack.back();
        stack.pop_back();
        const ProfileNode& info = profile.nodes()[node];
        if (100.0 * info.total < kPrunePercent * total) {
            ++pruned;
            continue;
        }
        text +=
            fmt::format("{:>6.1f}% {:>6.1f}%  {:{}}{}\n", 100.0 * info.total / total,
                        100.0 * info.self / total, "", 2 * depth, profile.frameLabel(info.frame));
        pushChildren(node, depth + 1);
    }
    if (pruned) {
        text += fmt::format("({} {} under {:g}% of the samples not shown)\n", pruned,
                            pruned == 1 ? "branch" : "branches", kPrunePercent);
    }
    return text;
}

// As Python prints a traceback (most recent call last), each frame followed
// by its locals.
std::string exceptionText(const ExceptionRecord& exception) {
    std::string heading = exception.message.empty()
                              ? exception.type
                              : fmt::format("{}: {}", exception.type, exception.message);
    std::string text = fmt::format("exception: {}\nTraceback (most recent call last):\n", heading);
    for (const FrameRecord& frame : exception.stack) {
        text +=
            fmt::format("  File \"{}\", line {}, in {}\n", frame.file, frame.line, frame.function);
        for (const auto& [name, repr] : frame.locals)
            text += fmt::format("      {} = {}\n", name, repr);
    }
    return text + heading + "\n";
}

std::string showText(const FinishedRequest& request, const Profile& profile) {
    std::string text = requestText(request) + "\n";
    if (!request.profileKept)
        text += "profile: not kept\n";
    else
        text += callTreeText(profile);
    if (request.exception) text += "\n" + exceptionText(*request.exception);
    return text;
}

void requireProfile(const FinishedRequest& request, const std::string& store) {
    if (request.profileKept && !request.profileFolded.empty()) return;
    throw NoSuchTransactionError(fmt::format(
        "{} has no profile in {}: the agent keeps one only for the requests its rules select",
        request.txn, store));
}

void writeOutput(const FinishedRequest& request, const ShowOptions& options) {
    StringTable strings;
    Profile profile = loadProfile(request, strings, options.format == "chrome");
    ProfileMetadata metadata{
        fmt::format("vigil show {}: {} (pid {})", request.txn, request.name, request.pid)};
    OutputFile file(options.output);
    file.write([&](std::ostream& out) { writeProfile(profile, options.format, metadata, out); });
    fmt::print(stderr, "vigil: wrote {} ({})\n", options.output, options.format);
}

int runShow(const ShowOptions& options) {
    StoreReader reader(options.store);
    std::optional<FinishedRequest> request = reader.find(options.txn);
    if (!request) {
        throw NoSuchTransactionError(
            fmt::format("no transaction {} in {} (vigil query lists what it holds)", options.txn,
                        reader.path()));
    }
    // Before anything is printed: a failure is one line on stderr, nothing else.
    if (!options.output.empty()) requireProfile(*request, reader.path());
    StringTable strings;
    Profile profile = loadProfile(*request, strings, false);
    std::string text = showText(*request, profile);
    writeStdout(text);
    if (!options.output.empty()) writeOutput(*request, options);
    return 0;
}

}  // namespace

Command addShowCommand(CLI::App& app, const Verbosity&) {
    auto options = std::make_shared<ShowOptions>();
    CLI::App* show = app.add_subcommand(
        "show", "Print what the agent's store holds of a transaction: request, profile, exception");
    show->add_option("txn", options->txn, "Transaction id (angry_einstein_7f3a)")->required();
    show->add_option("--store", options->store,
                     "The agent's [store] dir (default: $VIGIL_STORE_DIR, else "
                     "~/.local/state/vigil)")
        ->capture_default_str();
    show->add_option("-o,--output", options->output,
                     "Also write the request's profile to this file, as vigil record would");
    show->add_option("-f,--format", options->format, "Format of the -o file")
        ->check(CLI::IsMember({"html", "speedscope", "folded", "pprof", "chrome"}))
        ->capture_default_str();
    return {show, [options] { return runShow(*options); }};
}

}  // namespace vigil::cli
