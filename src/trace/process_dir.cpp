#include "trace/process_dir.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/errors.h"
#include "trace/format.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

bool holdsTrace(const fs::path& dir) {
    std::error_code error;
    return fs::is_regular_file(dir / trace::kMetaFile, error);
}

// The process directories of a run, by name.
std::vector<std::string> processesOf(const fs::path& run) {
    std::vector<std::string> names;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(run, error))
        if (holdsTrace(entry.path())) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

std::string findProcessDir(const std::string& path) {
    std::error_code error;
    if (!fs::is_directory(path, error))
        throw BadFileError(
            fmt::format("{}: {}", path,
                        fs::exists(path, error) ? "not a trace directory" : "no such directory"));
    if (holdsTrace(path)) return path;
    fs::path latest = fs::path(path) / "latest";
    fs::path run = fs::exists(latest, error) ? latest : fs::path(path);
    std::vector<std::string> names = processesOf(run);
    if (names.size() == 1) return (run / names.front()).string();
    if (names.empty())
        throw BadFileError(fmt::format(
            "{} holds no trace: expected a process directory (holding {}), a run directory or a "
            "base directory with a latest link",
            path, trace::kMetaFile));
    throw UsageError(fmt::format("{} holds the traces of {} processes ({}): give one, such as {}",
                                 run.string(), names.size(), fmt::join(names, ", "),
                                 (run / names.front()).string()));
}

}  // namespace vigil
