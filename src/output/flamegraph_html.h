// `vigil record --format html`: one self-contained page with an interactive
// flame graph (canvas; zoom, search, tooltips, shareable #search=/#zoom=
// links). The page works offline: the profile is embedded as JSON and the
// script and styles are inline. See src/output/flamegraph/template.html.
#pragma once

#include <ostream>
#include <string>

#include "core/profile.h"

namespace vigil {

struct FlameGraphOptions {
    std::string title;     // the page's heading and <title>, e.g. the command line
    std::string subtitle;  // e.g. "pid 4242 · 100 Hz · 12,345 samples · 0.1% invalid"
};

void writeFlameGraphHtml(const Profile& profile, const FlameGraphOptions& options,
                         std::ostream& out);

}  // namespace vigil
