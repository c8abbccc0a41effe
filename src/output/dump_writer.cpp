#include "output/dump_writer.h"

#include <fmt/format.h>

namespace vigil {
namespace {

const char* stateName(TaskState state) {
    switch (state) {
        case TaskState::kRunning:
            return "running";
        case TaskState::kIdle:
            return "idle";
        default:
            return "unknown";
    }
}

std::string threadHeading(const ThreadSnapshot& thread) {
    std::string heading = fmt::format("Thread {:#x}", thread.threadId);
    if (!thread.name.empty()) heading += fmt::format(" \"{}\"", thread.name);
    if (thread.nativeThreadId > 0) heading += fmt::format(" (native {})", thread.nativeThreadId);
    if (thread.interpreter != 0) heading += fmt::format(" [interpreter {}]", thread.interpreter);
    heading += fmt::format(" {}", stateName(thread.state));
    if (thread.holdsGil) heading += ", holds the GIL";
    return heading;
}

void appendFrames(std::string& out, const ThreadSnapshot& thread, const StringTable& strings) {
    if (!thread.consistent) {
        out += "    (the stack changed too fast to be read consistently; try --blocking)\n";
        return;
    }
    if (thread.frames.empty()) out += "    (no Python frames)\n";
    for (const FrameSnapshot& frame : thread.frames) {
        out += fmt::format("    {} ({}:{})\n", strings.get(frame.code->qualname),
                           strings.get(frame.code->filename), frame.line);
        for (const LocalValue& local : frame.locals) {
            out += fmt::format("        {}{} = {}\n", local.argument ? "arg " : "",
                               strings.get(local.name), local.value);
        }
    }
}

}  // namespace

std::string dumpAsText(const DumpContext& context) {
    const PythonProcess& process = context.process;
    std::string out =
        fmt::format("Process {}: {}\n", process.info().pid(), process.info().commandLine());
    out += fmt::format("Python {} ({})\n", process.layout().version.str(), process.target().binary);
    for (const ThreadSnapshot& thread : context.snapshot.threads) {
        out += "\n" + threadHeading(thread) + "\n";
        appendFrames(out, thread, context.strings);
    }
    return out;
}

nlohmann::json dumpAsJson(const DumpContext& context) {
    using nlohmann::json;
    const PythonProcess& process = context.process;
    const StringTable& strings = context.strings;
    json threads = json::array();
    for (const ThreadSnapshot& thread : context.snapshot.threads) {
        json frames = json::array();
        for (const FrameSnapshot& frame : thread.frames) {
            json entry = {
                {"function", strings.get(frame.code->name)},
                {"qualified_name", strings.get(frame.code->qualname)},
                {"file", strings.get(frame.code->filename)},
                {"line", frame.line},
                {"first_line", frame.code->firstLine},
            };
            if (!frame.locals.empty() || !frame.code->locals.empty()) {
                json locals = json::array();
                for (const LocalValue& local : frame.locals) {
                    locals.push_back({{"name", strings.get(local.name)},
                                      {"argument", local.argument},
                                      {"value", local.value}});
                }
                entry["locals"] = std::move(locals);
            }
            frames.push_back(std::move(entry));
        }
        threads.push_back({
            {"thread_id", thread.threadId},
            {"native_thread_id",
             thread.nativeThreadId > 0 ? json(thread.nativeThreadId) : json(nullptr)},
            {"name", thread.name.empty() ? json(nullptr) : json(thread.name)},
            {"interpreter", thread.interpreter},
            {"holds_gil", thread.holdsGil},
            {"state", stateName(thread.state)},
            {"consistent", thread.consistent},
            {"frames", std::move(frames)},
        });
    }
    return {
        {"schema_version", 1},
        {"pid", process.info().pid()},
        {"command_line", process.info().commandLine()},
        {"python",
         {{"version", process.layout().version.str()},
          {"binary", process.target().binary},
          {"runtime_found_by", process.target().foundBy}}},
        {"snapshot",
         {{"blocking", context.blocking},
          {"attempts", context.snapshot.attempts},
          {"torn_walks", context.snapshot.tornWalks},
          {"duration_ms", context.durationMs}}},
        {"threads", std::move(threads)},
    };
}

}  // namespace vigil
