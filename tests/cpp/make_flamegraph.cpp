// Writes the flame graph page of a synthetic profile, for the page's browser
// tests (tests/python/test_flamegraph_html.py) and for trying the page out.
//
//   vigil_make_flamegraph OUT.html                 known paths, 1,000 samples
//   vigil_make_flamegraph OUT.html --frames N [--nodes M]
//                                                  N distinct Python frames in
//                                                  a deep and wide tree (at
//                                                  least M nodes), under a
//                                                  process and four threads
//   --title TEXT        the page title instead of the default
//   --extra-frame NAME  one more sample, main > NAME (NAME may be hostile HTML)
//
// The known profile, each count exact:
//   main > handle_request > query_db > execute       450
//   main > handle_request > query_db > build_query   150
//   main > render > render_row                       200
//   main > render                                    100 (self)
//   main > log                                       100
// so a search for "query" matches 60% (build_query sits under query_db and
// must not be counted twice) and /^re/ matches 30% (render and render_row).
// Everything is deterministic: the same arguments give the same bytes.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/profile.h"
#include "output/flamegraph_html.h"

namespace {

using vigil::FrameId;
using vigil::FrameKind;
using vigil::Profile;

struct Arguments {
    std::string output;
    int frames = 0;  // 0: the known profile
    int nodes = 0;
    std::string title;
    std::string extraFrame;
};

[[noreturn]] void usage() {
    std::cerr << "usage: vigil_make_flamegraph OUT.html [--frames N [--nodes M]] [--title TEXT]"
                 " [--extra-frame NAME]\n";
    std::exit(2);
}

Arguments parseArguments(int argc, char** argv) {
    Arguments arguments;
    for (int i = 1; i < argc; ++i) {
        std::string_view argument = argv[i];
        bool hasValue = i + 1 < argc;
        if (argument == "--frames" && hasValue) {
            arguments.frames = std::atoi(argv[++i]);
        } else if (argument == "--nodes" && hasValue) {
            arguments.nodes = std::atoi(argv[++i]);
        } else if (argument == "--title" && hasValue) {
            arguments.title = argv[++i];
        } else if (argument == "--extra-frame" && hasValue) {
            arguments.extraFrame = argv[++i];
        } else if (arguments.output.empty() && !argument.starts_with("--")) {
            arguments.output = argument;
        } else {
            usage();
        }
    }
    if (arguments.output.empty() || arguments.frames < 0 || arguments.nodes < 0) usage();
    return arguments;
}

FrameId pythonFrame(Profile& profile, std::string_view name, std::string_view file, int line) {
    vigil::StringTable& strings = profile.strings();
    return profile.frame(strings.intern(name), strings.intern(file), line);
}

void addKnownSamples(Profile& profile, const std::string& extraFrame) {
    FrameId main = pythonFrame(profile, "main", "app.py", 1);
    FrameId handleRequest = pythonFrame(profile, "handle_request", "app.py", 10);
    FrameId queryDb = pythonFrame(profile, "query_db", "db.py", 5);
    FrameId execute = pythonFrame(profile, "execute", "db.py", 30);
    FrameId buildQuery = pythonFrame(profile, "build_query", "db.py", 12);
    FrameId render = pythonFrame(profile, "render", "views.py", 20);
    FrameId renderRow = pythonFrame(profile, "render_row", "views.py", 40);
    FrameId log = pythonFrame(profile, "log", "app.py", 30);
    profile.add(std::vector{main, handleRequest, queryDb, execute}, 450);
    profile.add(std::vector{main, handleRequest, queryDb, buildQuery}, 150);
    profile.add(std::vector{main, render, renderRow}, 200);
    profile.add(std::vector{main, render}, 100);
    profile.add(std::vector{main, log}, 100);
    if (!extraFrame.empty()) {
        profile.add(std::vector{main, pythonFrame(profile, extraFrame, "<extra>.py", 1)});
    }
}

// A fixed 64-bit LCG: unlike the standard distributions, it gives the same
// numbers with every standard library.
class Random {
  public:
    uint32_t below(uint32_t bound) {
        state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<uint32_t>(state_ >> 33) % bound;
    }

  private:
    uint64_t state_ = 42;
};

constexpr int kThreads = 4;

// Frame i's caller is frame callers[i]: half of them a recent frame (long
// call chains), half any earlier one (wide fan-out near the top).
std::vector<int> randomCallers(int frames, Random& random) {
    std::vector<int> callers(frames, -1);
    for (int i = kThreads; i < frames; ++i) {
        uint32_t recent = std::min<uint32_t>(i, 8);
        callers[i] = random.below(2) ? i - 1 - random.below(recent) : random.below(i);
    }
    return callers;
}

std::vector<FrameId> makeFrames(Profile& profile, int frames) {
    std::vector<FrameId> ids;
    for (int i = 0; i < frames; ++i) {
        std::string name = i < kThreads ? fmt::format("<module>_{}", i)
                                        : fmt::format("Service{}.handle_{}", i % 37, i);
        std::string file = fmt::format("/srv/app/pkg{}/module{}.py", i % 11, i % 97);
        ids.push_back(pythonFrame(profile, name, file, 10 + i % 400));
    }
    return ids;
}

std::vector<FrameId> stackOf(int frame, const std::vector<int>& callers,
                             const std::vector<FrameId>& ids, const std::vector<FrameId>& roots) {
    std::vector<FrameId> stack;
    int outermost = frame;
    for (int f = frame; f >= 0; f = callers[f]) {
        stack.push_back(ids[f]);
        outermost = f;
    }
    stack.push_back(roots[outermost % kThreads]);
    stack.push_back(roots[kThreads]);  // the process
    return {stack.rbegin(), stack.rend()};
}

std::vector<FrameId> makeRoots(Profile& profile) {
    vigil::StringTable& strings = profile.strings();
    std::vector<FrameId> roots;
    for (int t = 0; t < kThreads; ++t) {
        std::string label =
            t == 0 ? "MainThread (4242)" : fmt::format("Worker-{} ({})", t, 4242 + t);
        roots.push_back(profile.frame(strings.intern(label), 0, 0, FrameKind::kThread));
    }
    roots.push_back(
        profile.frame(strings.intern("python app.py (pid 4242)"), 0, 0, FrameKind::kProcess));
    return roots;
}

// Samples every frame at least once, then calls random frames from random
// places until there are enough distinct stacks.
void addGeneratedSamples(Profile& profile, int frames, int nodes) {
    Random random;
    std::vector<int> callers = randomCallers(frames, random);
    std::vector<FrameId> ids = makeFrames(profile, frames);
    std::vector<FrameId> roots = makeRoots(profile);
    for (int f = 0; f < frames; ++f) {
        uint64_t count = 1 + random.below(20) + (random.below(40) == 0 ? 2000 : 0);
        profile.add(stackOf(f, callers, ids, roots), count);
    }
    while (profile.nodes().size() < static_cast<size_t>(nodes)) {
        std::vector<FrameId> stack = stackOf(random.below(frames), callers, ids, roots);
        for (uint32_t extra = 1 + random.below(4); extra > 0; --extra) {
            stack.push_back(ids[random.below(frames)]);
        }
        profile.add(stack, 1 + random.below(5));
    }
}

vigil::FlameGraphOptions pageOptions(const Arguments& arguments, const Profile& profile) {
    vigil::FlameGraphOptions options;
    options.title = arguments.title;
    if (options.title.empty()) {
        options.title = arguments.frames > 0 ? "python app.py (synthetic, many frames)"
                                             : "python app.py (synthetic)";
    }
    options.subtitle = fmt::format("pid 4242 · 100 Hz · {} samples · 0.0% invalid",
                                   fmt::group_digits(profile.totalSamples()));
    return options;
}

}  // namespace

int main(int argc, char** argv) {
    Arguments arguments = parseArguments(argc, argv);
    vigil::StringTable strings;
    Profile profile(strings);
    if (arguments.frames > 0) {
        addGeneratedSamples(profile, std::max(arguments.frames, kThreads), arguments.nodes);
    } else {
        addKnownSamples(profile, arguments.extraFrame);
    }
    std::ofstream out(arguments.output, std::ios::binary);
    vigil::writeFlameGraphHtml(profile, pageOptions(arguments, profile), out);
    out.close();
    if (!out) {
        std::cerr << "vigil_make_flamegraph: cannot write " << arguments.output << "\n";
        return 1;
    }
    std::cerr << fmt::format("{}: {} frames, {} nodes, {} samples\n", arguments.output,
                             profile.frames().size(), profile.nodes().size(),
                             profile.totalSamples());
    return 0;
}
