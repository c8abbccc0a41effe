// Finding the interpreter in a process: which mapped file holds _PyRuntime,
// which CPython version it is, and which offsets to read it with.
//
// Each step is small and narrated (vigil --verbose says which ran and why one
// failed); every candidate _PyRuntime is validated by following
// interpreter -> thread -> interpreter back pointers before it is trusted.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/layout.h"
#include "core/memory.h"
#include "core/process.h"

namespace vigil {

class ElfFile;

using Narrator = std::function<void(std::string_view)>;

// Where to look for _PyRuntime. kAuto tries the ELF symbol, then the
// .PyRuntime section, then a scan of the binary's data; the others force one
// strategy (for troubleshooting and tests).
enum class RuntimeStrategy { kAuto, kSymbol, kSection, kScan };

struct PythonTarget {
    std::string binary;  // the file holding _PyRuntime, as the target names it
    uint64_t runtimeAddress = 0;
    PyLayout layout;
    std::string foundBy;  // which strategy found _PyRuntime
};

// A mapped ELF file that may hold the interpreter.
struct BinaryCandidate {
    std::string path;
    uint64_t loadBias = 0;
    std::vector<MemoryMap> maps;  // its mappings, plus the anonymous .bss after them
};

// Parses "3.11" out of names like libpython3.11.so.1.0, libpython3.7m.so or python3.9.
std::optional<PyVersion> versionFromFileName(std::string_view path);

// Mapped libpython files first, then the executable.
std::vector<BinaryCandidate> interpreterCandidates(const ProcessInfo& process);

// Follows runtime -> first interpreter -> first thread -> back to the
// interpreter. False (with why) if the chain does not hold, or if there is no
// thread to check it with and requireThread is set.
bool validateRuntime(MemorySource& memory, const PyLayout& layout, uint64_t runtime,
                     std::string& why, bool requireThread = false);

// Throws NotPythonError, UnsupportedVersionError, PermissionError or
// ProcessExitedError with a message naming the process and what to do.
PythonTarget discoverPython(const ProcessInfo& process, MemorySource& memory,
                            RuntimeStrategy strategy, const Narrator& narrate);

}  // namespace vigil
