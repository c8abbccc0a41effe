// Text and JSON formats of a Profile: folded stacks, speedscope, Chrome trace.
// (The flame graph page and pprof have files of their own.)
#pragma once

#include <ostream>
#include <string>

#include "core/profile.h"

namespace vigil {

struct ProfileMetadata {
    std::string name;  // e.g. "vigil record: pid 4242 (python3 app.py)"
    std::string exporter = "vigil 0.1.0";
};

// Brendan Gregg's collapsed stacks: "outer;inner count", one line per stack.
void writeFolded(const Profile& profile, std::ostream& out);

// https://www.speedscope.app/file-format-schema.json: one sampled profile per
// thread (or process) when the profile has such roots, else one.
void writeSpeedscope(const Profile& profile, const ProfileMetadata& metadata, std::ostream& out);

// Chrome's trace-event JSON: each track's samples as nested complete ("X")
// events on a timeline; opens in Perfetto and chrome://tracing. Needs a
// profile that kept its timeline.
void writeChromeTrace(const Profile& profile, const ProfileMetadata& metadata, std::ostream& out);

}  // namespace vigil
