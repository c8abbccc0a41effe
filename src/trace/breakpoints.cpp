#include "trace/breakpoints.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {
namespace {

std::optional<uint32_t> lineNumber(std::string_view text) {
    uint32_t line = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), line);
    if (error != std::errc() || end != text.data() + text.size() || line == 0) return std::nullopt;
    return line;
}

}  // namespace

bool fileMatches(std::string_view path, std::string_view file) {
    return path.ends_with(file) &&
           (path.size() == file.size() || path[path.size() - file.size() - 1] == '/');
}

const Breakpoint& Breakpoints::add(std::string_view spec, const std::string& currentFile) {
    // The last colon: a path may hold colons, a line number does not.
    size_t colon = spec.rfind(':');
    std::string_view file = colon == std::string_view::npos ? currentFile : spec.substr(0, colon);
    std::optional<uint32_t> line =
        lineNumber(colon == std::string_view::npos ? spec : spec.substr(colon + 1));
    if (!line || file.empty())
        throw UsageError(
            fmt::format("cannot read the breakpoint \"{}\": expected LINE (in the "
                        "file shown) or FILE:LINE, such as flow.py:42",
                        spec));
    list_.push_back({nextId_++, std::string(file), *line});
    return list_.back();
}

bool Breakpoints::remove(int id) {
    return std::erase_if(list_, [id](const Breakpoint& point) { return point.id == id; }) > 0;
}

const Breakpoint* Breakpoints::hitBy(const TraceEvent& event, const TraceReader& reader) const {
    if (event.kind != TraceEventKind::kLine && event.kind != TraceEventKind::kCall) return nullptr;
    const TraceCode* code = nullptr;
    for (const Breakpoint& point : list_) {
        if (point.line != event.line) continue;
        if (!code) code = reader.code(event.code);
        if (code && fileMatches(code->file, point.file)) return &point;
    }
    return nullptr;
}

}  // namespace vigil
