#include "core/discovery.h"

#include <algorithm>
#include <cstring>
#include <regex>

#include <fmt/format.h>

#include "core/debug_offsets.h"
#include "core/elf.h"
#include "core/errors.h"
#include "core/stack_walker.h"

namespace vigil {
namespace {

constexpr uint64_t kMaxScanBytes = 64 << 20;
constexpr size_t kMaxScanValidations = 20000;

std::string baseName(std::string_view path) {
    size_t slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

bool isLibpython(const std::string& path) {
    return baseName(path).rfind("libpython", 0) == 0;
}

// The path to open for a mapped file: through the target's root, or through
// map_files when the file was deleted or replaced since it was mapped.
std::string openablePath(const ProcessInfo& process, const BinaryCandidate& candidate) {
    const std::string deleted = " (deleted)";
    const std::string& path = candidate.path;
    if (path.size() > deleted.size() &&
        path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0) {
        const MemoryMap& first = candidate.maps.front();
        return fmt::format("/proc/{}/map_files/{:x}-{:x}", process.pid(), first.start, first.end);
    }
    return process.hostPath(path);
}

BinaryCandidate collectMappings(const ProcessInfo& process, const std::string& path) {
    BinaryCandidate candidate{path, 0, {}};
    const auto& maps = process.maps();
    for (size_t i = 0; i < maps.size(); ++i) {
        if (maps[i].path != path) continue;
        candidate.maps.push_back(maps[i]);
        // The .bss that follows a file's last mapping is anonymous.
        bool nextIsBss = i + 1 < maps.size() && maps[i + 1].path.empty() &&
                         maps[i + 1].start == maps[i].end && maps[i + 1].writable;
        if (nextIsBss) candidate.maps.push_back(maps[i + 1]);
    }
    return candidate;
}

std::optional<uint64_t> readVersionHex(MemorySource& memory, const ElfFile& elf, uint64_t bias) {
    auto address = elf.symbolAddress("Py_Version");
    uint64_t hex = 0;
    if (!address || !memory.readValue(bias + *address, hex)) return std::nullopt;
    return hex & 0xffffffff;
}

// Linked structures of other kinds can pass the back-pointer checks; a real
// interpreter has a thread whose stack walks through real code objects.
bool someThreadHasPythonFrames(MemorySource& memory, const PyLayout& layout, uint64_t interp) {
    StringTable strings;
    ObjectReader objects(memory, layout);
    CodeCache codes(objects, strings);
    StackWalker walker(memory, layout, codes);
    std::vector<RawFrame> frames;
    ThreadStateView view;
    uint64_t thread = 0;
    memory.readPointer(interp + layout.interp.threads_head, thread);
    for (int count = 0; thread != 0 && count < 10000; ++count, thread = view.next) {
        WalkStatus status = walker.walk(thread, view, frames);
        if (status == WalkStatus::kUnreadable) return false;
        if (status == WalkStatus::kComplete && !frames.empty()) return true;
    }
    return false;
}

// For a candidate found by scanning: every thread of the interpreter points
// back to it, and _PyRuntime.interpreters.main (the word after head in
// struct pyinterpreters, 3.8-3.13) names an interpreter too.
bool validateStrictly(MemorySource& memory, const PyLayout& layout, uint64_t runtime,
                      uint64_t interp, std::string& why) {
    uint64_t main = 0, thread = 0, back = 0;
    if (!memory.readPointer(runtime + layout.runtime.interpreters_head + 8, main) || main == 0 ||
        main % 8 != 0 || !memory.readPointer(main + layout.interp.threads_head, thread)) {
        why = "interpreters.main is not an interpreter";
        return false;
    }
    if (!memory.readPointer(interp + layout.interp.threads_head, thread)) return false;
    // Self-linked lists (pymalloc's pool lists) point back to themselves:
    // a thread state is never its own interpreter and always has a thread id.
    uint64_t threadId = 0;
    for (int count = 0; thread != 0; ++count) {
        if (count > 10000 || thread == interp ||
            !memory.readPointer(thread + layout.thread.interp, back) || back != interp ||
            !memory.readPointer(thread + layout.thread.thread_id, threadId) || threadId == 0 ||
            !memory.readPointer(thread + layout.thread.next, thread)) {
            why = "the thread list does not hold";
            return false;
        }
    }
    return someThreadHasPythonFrames(memory, layout, interp);
}

bool hasPythonSymbols(const ElfFile& elf) {
    return elf.symbolAddress("Py_BytesMain") || elf.symbolAddress("Py_Initialize");
}

bool inWritableMapping(const std::vector<MemoryMap>& maps, uint64_t address) {
    auto after =
        std::upper_bound(maps.begin(), maps.end(), address,
                         [](uint64_t value, const MemoryMap& map) { return value < map.start; });
    return after != maps.begin() && std::prev(after)->contains(address) &&
           std::prev(after)->writable;
}

// Scans the binary's writable data for a word that validates as _PyRuntime.
// Only words that look like pointers to writable memory are checked remotely.
std::optional<uint64_t> scanForRuntime(MemorySource& memory, const BinaryCandidate& candidate,
                                       const std::vector<MemoryMap>& processMaps,
                                       const PyLayout& layout, const Narrator& narrate) {
    size_t validations = 0;
    std::string why;
    size_t headIndex = layout.runtime.interpreters_head / 8;
    for (const MemoryMap& map : candidate.maps) {
        if (!map.writable || !map.readable || map.end - map.start > kMaxScanBytes) continue;
        std::vector<uint64_t> words((map.end - map.start) / 8);
        if (!memory.read(map.start, words.data(), words.size() * 8)) continue;
        for (size_t i = 0; i + headIndex + 1 < words.size(); ++i) {
            uint64_t head = words[i + headIndex];
            uint64_t main = words[i + headIndex + 1];  // interpreters.main
            if (head == 0 || head % 8 != 0 || main == 0 || main % 8 != 0 ||
                !inWritableMapping(processMaps, head) || !inWritableMapping(processMaps, main)) {
                continue;
            }
            if (++validations > kMaxScanValidations) break;
            uint64_t runtime = map.start + i * 8;
            // A random word is far likelier to pass with no thread to check.
            if (validateRuntime(memory, layout, runtime, why, /*requireThread=*/true)) {
                narrate(fmt::format("scan: _PyRuntime validated at {:#x} after {} candidates",
                                    runtime, validations));
                return runtime;
            }
        }
    }
    narrate(fmt::format("scan: no address validated among {} candidates", validations));
    return std::nullopt;
}

std::optional<uint64_t> findRuntime(MemorySource& memory, const ElfFile& elf,
                                    const BinaryCandidate& candidate,
                                    const std::vector<MemoryMap>& processMaps,
                                    const PyLayout& layout, RuntimeStrategy strategy,
                                    const Narrator& narrate, std::string& foundBy) {
    bool any = strategy == RuntimeStrategy::kAuto;
    if (any || strategy == RuntimeStrategy::kSymbol) {
        if (auto symbol = elf.symbolAddress("_PyRuntime")) {
            narrate(fmt::format("symbol: _PyRuntime at {:#x} in {}", candidate.loadBias + *symbol,
                                candidate.path));
            foundBy = "symbol";
            return candidate.loadBias + *symbol;
        }
        narrate(fmt::format("symbol: {} has no _PyRuntime symbol", candidate.path));
    }
    if (any || strategy == RuntimeStrategy::kSection) {
        if (auto section = elf.section(".PyRuntime")) {
            narrate(
                fmt::format("section: .PyRuntime at {:#x}", candidate.loadBias + section->address));
            foundBy = "section";
            return candidate.loadBias + section->address;
        }
        narrate(
            fmt::format("section: {} has no .PyRuntime section (added in 3.10)", candidate.path));
    }
    if (any || strategy == RuntimeStrategy::kScan) {
        foundBy = "scan";
        return scanForRuntime(memory, candidate, processMaps, layout, narrate);
    }
    return std::nullopt;
}

// A version newer than our tables: the fields _Py_DebugOffsets does not
// describe and that only make walks cheaper are not trusted.
void withoutShortcuts(PyLayout& layout) {
    layout.thread.exc_info = layout.thread.exc_state = kNone;
    layout.thread.status = layout.thread.holds_gil_bit = kNone;
    layout.code.nlocalsplus = kNone;
}

// The layout for a version; for 3.13+ laid over with the target's own
// _Py_DebugOffsets.
std::optional<PyLayout> layoutFor(MemorySource& memory, PyVersion version, uint64_t runtime,
                                  const Narrator& narrate) {
    auto layout = generatedLayout(version.major, version.minor);
    if (!layout) return std::nullopt;
    layout->version = version;
    if (!version.atLeast(3, 13)) return layout;
    DebugOffsets313 offsets{};
    std::string why;
    if (readDebugOffsets(memory, runtime, offsets, why)) {
        applyDebugOffsets(offsets, *layout);
        if (version.minor > newestGeneratedVersion().minor) withoutShortcuts(*layout);
        narrate(fmt::format("layout: offsets read from the target's _Py_DebugOffsets ({})",
                            layout->version.str()));
        return layout;
    }
    narrate(fmt::format("layout: {}", why));
    PyVersion newest = newestGeneratedVersion();
    if (version.minor > newest.minor) return std::nullopt;
    narrate("layout: using the generated table instead");
    return layout;
}

}  // namespace

std::optional<PyVersion> versionFromFileName(std::string_view path) {
    static const std::regex pattern(R"(^(?:lib)?python(\d+)\.(\d+))");
    std::string name = baseName(path);
    std::smatch match;
    if (!std::regex_search(name, match, pattern)) return std::nullopt;
    return PyVersion{std::stoi(match[1]), std::stoi(match[2]), 0};
}

std::vector<BinaryCandidate> interpreterCandidates(const ProcessInfo& process) {
    std::vector<std::string> paths;
    for (const MemoryMap& map : process.maps()) {
        if (isLibpython(map.path) &&
            std::find(paths.begin(), paths.end(), map.path) == paths.end()) {
            paths.push_back(map.path);
        }
    }
    if (!process.executable().empty()) paths.push_back(process.executable());
    std::vector<BinaryCandidate> candidates;
    for (const std::string& path : paths) {
        BinaryCandidate candidate = collectMappings(process, path);
        if (!candidate.maps.empty()) candidates.push_back(std::move(candidate));
    }
    return candidates;
}

bool validateRuntime(MemorySource& memory, const PyLayout& layout, uint64_t runtime,
                     std::string& why, bool requireThread) {
    uint64_t interp = 0, thread = 0, back = 0;
    if (!memory.readPointer(runtime + layout.runtime.interpreters_head, interp) || interp == 0) {
        why = "no interpreter yet (is Python still starting?)";
        return false;
    }
    if (!memory.readPointer(interp + layout.interp.threads_head, thread)) {
        why = fmt::format("interpreter at {:#x} is unreadable", interp);
        return false;
    }
    if (thread == 0) {
        why = "the interpreter has no thread";
        return !requireThread;  // a live interpreter exiting may have none left
    }
    if (!memory.readPointer(thread + layout.thread.interp, back) || back != interp) {
        why = fmt::format("thread state {:#x} does not point back to interpreter {:#x}", thread,
                          interp);
        return false;
    }
    return !requireThread || validateStrictly(memory, layout, runtime, interp, why);
}

PythonTarget discoverPython(const ProcessInfo& process, MemorySource& memory,
                            RuntimeStrategy strategy, const Narrator& narrate) {
    auto candidates = interpreterCandidates(process);
    std::string lastProblem = "no libpython is mapped and the executable holds no interpreter";
    for (BinaryCandidate& candidate : candidates) {
        narrate(fmt::format("candidate: {}", candidate.path));
        std::optional<ElfFile> opened;
        try {
            opened.emplace(ElfFile::open(openablePath(process, candidate)));
        } catch (const BadFileError& error) {
            narrate(fmt::format("candidate: skipped, {}", error.what()));
            continue;
        }
        const ElfFile& elf = *opened;
        const MemoryMap& first = candidate.maps.front();
        candidate.loadBias = loadBias(elf.loadSegments(), first.start, first.fileOffset);
        narrate(fmt::format("candidate: load bias {:#x}", candidate.loadBias));

        std::optional<PyVersion> version;
        if (auto hex = readVersionHex(memory, elf, candidate.loadBias)) {
            version = versionFromHex(*hex);
            narrate(fmt::format("version: Py_Version says {}", version->str()));
        } else if ((version = versionFromFileName(candidate.path))) {
            narrate(
                fmt::format("version: {}.{} from the file name", version->major, version->minor));
            version->micro = -1;  // PythonProcess reads it from sys.version
        }
        if (version && !version->atLeast(3, 8)) {
            throw UnsupportedVersionError(
                fmt::format("process {} runs Python {}.{} ({}); vigil reads Python 3.8 and later",
                            process.pid(), version->major, version->minor, candidate.path));
        }
        std::vector<PyVersion> tries;
        if (version) {
            tries.push_back(*version);
        } else if (!hasPythonSymbols(elf)) {
            narrate("candidate: skipped, no version in its name and no Python symbols");
            continue;
        } else {
            narrate("version: unknown; trying every known layout, newest first");
            for (int minor = newestGeneratedVersion().minor; minor >= 8; --minor)
                tries.push_back({3, minor, 0});
        }
        for (const PyVersion& tryVersion : tries) {
            auto base = generatedLayout(tryVersion.major, tryVersion.minor);
            if (!base) continue;
            std::string foundBy;
            auto runtime = findRuntime(memory, elf, candidate, process.maps(), *base, strategy,
                                       narrate, foundBy);
            if (!runtime) continue;
            auto layout = layoutFor(memory, tryVersion, *runtime, narrate);
            if (!layout) {
                throw UnsupportedVersionError(fmt::format(
                    "process {} runs Python {}, which is newer than vigil knows and publishes no "
                    "readable _Py_DebugOffsets; upgrade vigil",
                    process.pid(), tryVersion.str()));
            }
            std::string why;
            if (!validateRuntime(memory, *layout, *runtime, why)) {
                narrate(fmt::format("validate: {}", why));
                lastProblem = why;
                continue;
            }
            narrate(fmt::format("validate: _PyRuntime at {:#x} holds", *runtime));
            return PythonTarget{candidate.path, *runtime, *layout, foundBy};
        }
    }
    std::string exe = process.executable().empty() ? "unknown executable" : process.executable();
    throw NotPythonError(fmt::format(
        "process {} ({}) is not a Python interpreter vigil can read: {} (run with --verbose to see "
        "what was tried)",
        process.pid(), exe, lastProblem));
}

}  // namespace vigil
