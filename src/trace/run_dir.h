// Where traces go: <base>/<YYMMDD-HHMMSS>/<process-name>/ — one run
// directory per recording, one process directory per recorded process in
// it (a forked child: <process-name>-<pid>), and <base>/latest, a symbolic
// link to the newest run.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace vigil::trace {

// Creates <baseDir>/<YYMMDD-HHMMSS> (local time; -2, -3... appended when
// that second is taken) and points <baseDir>/latest at it, replacing the
// link atomically. Returns its path. Throws OutputError.
std::string createRunDir(const std::string& baseDir, int64_t realtimeNs);

// "<name>" or "<name>-<pid>", slashes and leading dots made harmless.
std::string processDirName(std::string_view processName, pid_t pid, bool withPid);

}  // namespace vigil::trace
