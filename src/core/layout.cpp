#include "core/layout.h"

#include <span>

namespace vigil {

namespace detail {
// Defined in layouts_generated.cpp: one table per minor, oldest first, consecutive.
std::span<const PyLayout> generatedLayouts();
}  // namespace detail

std::string PyVersion::str() const {
    std::string text = std::to_string(major) + "." + std::to_string(minor);
    return micro >= 0 ? text + "." + std::to_string(micro) : text;  // micro -1: unknown
}

std::optional<PyLayout> generatedLayout(int major, int minor) {
    if (major != 3) return std::nullopt;
    const PyLayout* best = nullptr;
    for (const PyLayout& layout : detail::generatedLayouts()) {
        if (layout.version.minor <= minor) best = &layout;
    }
    if (best == nullptr) return std::nullopt;
    PyLayout result = *best;
    if (result.version.minor != minor) result.version = PyVersion{major, minor, 0};
    return result;
}

PyVersion newestGeneratedVersion() {
    return detail::generatedLayouts().back().version;
}

}  // namespace vigil
