// Writing a recording as a pprof profile: gzip-compressed profile.proto
// (schema in output/profile.proto), read by `go tool pprof`, Pyroscope,
// speedscope and most profiling UIs.
#pragma once

#include <ostream>

#include "core/profile.h"

namespace vigil {

// Writes the whole profile to out as one gzip member. Python frames become
// locations; thread and process roots become the sample labels "thread" and
// "process". Throws OutputError when encoding, compressing or writing fails.
void writePprof(const Profile& profile, std::ostream& out);

}  // namespace vigil
