// Which process directory a path given on the command line means: the
// process directory itself, a run directory holding a single one, or a
// base directory whose `latest` run holds a single one
// (docs/trace-format.md, "Layout").
#pragma once

#include <string>

namespace vigil {

// Throws BadFileError when there is no trace there, UsageError (listing
// them) when the run holds several processes.
std::string findProcessDir(const std::string& path);

}  // namespace vigil
