#include "trace/trace_meta.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/agent_state.h"
#include "core/errors.h"
#include "trace/file_io.h"
#include "trace/format.h"

namespace vigil::trace {

void writeTraceMeta(const std::string& dir, const TraceMeta& meta) {
    nlohmann::ordered_json json = {{"format", meta.version},
                                   {"pid", meta.pid},
                                   {"process_start_ticks", meta.processStartTicks},
                                   {"process_name", meta.processName},
                                   {"start_monotonic_ns", meta.startMonotonicNs},
                                   {"start_realtime_ns", meta.startRealtimeNs}};
    std::string path = fmt::format("{}/{}", dir, kMetaFile);
    std::string temporary = fmt::format("{}.{}.tmp", path, ::getpid());
    File file(temporary, O_WRONLY | O_CREAT | O_TRUNC);
    int error = file.valid() ? file.write(json.dump(2) + "\n") : errno;
    // link(2) fails when the name exists: never two writers in one directory.
    if (!error && ::link(temporary.c_str(), path.c_str()) != 0) error = errno;
    ::unlink(temporary.c_str());
    if (error == EEXIST)
        throw OutputError(
            fmt::format("{} holds a trace already: record into another directory", dir));
    if (error) throw OutputError(fmt::format("cannot write {}: {}", path, errorText(error)));
}

TraceMeta readTraceMeta(const std::string& dir) {
    std::string path = fmt::format("{}/{}", dir, kMetaFile);
    std::ifstream in(path);
    if (!in)
        throw BadFileError(fmt::format(
            "{}: no trace there ({} is missing); give a process directory of a trace, such as "
            "<dir>/latest/<process-name>",
            dir, kMetaFile));
    std::stringstream text;
    text << in.rdbuf();
    TraceMeta meta;
    try {
        nlohmann::json json = nlohmann::json::parse(text.str());
        meta.version = json.at("format").get<uint32_t>();
        meta.pid = json.at("pid").get<int32_t>();
        meta.processStartTicks = json.at("process_start_ticks").get<uint64_t>();
        meta.processName = json.at("process_name").get<std::string>();
        meta.startMonotonicNs = json.at("start_monotonic_ns").get<int64_t>();
        meta.startRealtimeNs = json.at("start_realtime_ns").get<int64_t>();
    } catch (const nlohmann::json::exception& error) {
        throw BadFileError(fmt::format("{}: not a trace description ({})", path, error.what()));
    }
    if (meta.version > kFormatVersion)
        throw BadFileError(
            fmt::format("{}: trace format {} is newer than this vigil reads ({}): "
                        "use a newer vigil",
                        path, meta.version, kFormatVersion));
    return meta;
}

bool writerAlive(const TraceMeta& meta) {
    std::optional<uint64_t> ticks = processStartTicks(meta.pid);
    return ticks && *ticks == meta.processStartTicks;
}

}  // namespace vigil::trace
