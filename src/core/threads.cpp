#include "core/threads.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>

namespace vigil {

std::optional<GilLocation> gilLocation(MemorySource& memory, const PyLayout& layout,
                                       uint64_t runtime, uint64_t interp) {
    if (layout.interp.ceval_gil == kNone) {
        // 3.8-3.11: one GIL, in _PyRuntime.ceval.gil.
        return GilLocation{runtime + layout.runtime.gil_locked,
                           runtime + layout.runtime.gil_last_holder};
    }
    // 3.12+: each interpreter points to its GIL (shared or its own).
    uint64_t gil = 0;
    if (!memory.readPointer(interp + layout.interp.ceval_gil, gil) || gil == 0) return std::nullopt;
    return GilLocation{gil + layout.interp.gil_locked, gil + layout.interp.gil_last_holder};
}

uint64_t gilHolder(MemorySource& memory, const PyLayout& layout, uint64_t runtime,
                   uint64_t interp) {
    auto gil = gilLocation(memory, layout, runtime, interp);
    int32_t locked = 0;
    uint64_t holder = 0;
    if (!gil || !memory.readValue(gil->locked, locked) || !locked ||
        !memory.readPointer(gil->holder, holder)) {
        return 0;
    }
    return holder;
}

bool NativeThreadIds::learn(MemorySource& memory, const std::vector<uint64_t>& pthreads,
                            const std::vector<pid_t>& tasks, pid_t pid) {
    std::set<pid_t> taskSet(tasks.begin(), tasks.end());
    std::vector<std::vector<int32_t>> structs;
    for (uint64_t pthread : pthreads) {
        std::vector<int32_t> words(kSearchBytes / 4);
        if (pthread && memory.read(pthread, words.data(), kSearchBytes))
            structs.push_back(std::move(words));
    }
    if (structs.empty()) return false;
    for (size_t index = 0; index < kSearchBytes / 4; ++index) {
        std::set<pid_t> seen;
        bool all =
            std::all_of(structs.begin(), structs.end(), [&](const std::vector<int32_t>& words) {
                return taskSet.count(words[index]) && seen.insert(words[index]).second;
            });
        if (all && (structs.size() > 1 || structs.front()[index] == pid)) {
            offset_ = index * 4;
            return true;
        }
    }
    return false;
}

std::optional<pid_t> NativeThreadIds::lookup(MemorySource& memory, uint64_t pthread) const {
    int32_t tid = 0;
    if (!offset_ || !memory.readValue(pthread + *offset_, tid) || tid <= 0) return std::nullopt;
    return tid;
}

std::unordered_map<uint64_t, std::string> threadNames(ObjectReader& objects, uint64_t interp) {
    std::unordered_map<uint64_t, std::string> names;
    uint64_t modules = 0;
    if (!objects.memory().readPointer(interp + objects.layout().interp.modules, modules) ||
        !modules) {
        return names;
    }
    uint64_t threading = objects.dictLookup(modules, "threading");
    uint64_t active = threading ? objects.dictLookup(objects.moduleDict(threading), "_active") : 0;
    if (!active) return names;
    objects.forEachDictItem(
        active,
        [&](uint64_t key, uint64_t thread) {
            auto ident = objects.readInt(key);
            uint64_t nameObject = objects.instanceAttribute(thread, "_name");
            auto name = nameObject ? objects.readStr(nameObject, 256) : std::nullopt;
            uint64_t value = 0;
            const char* end = ident ? ident->data() + ident->size() : nullptr;
            if (ident && name && std::from_chars(ident->data(), end, value).ec == std::errc()) {
                names.emplace(value, *name);
            }
            return true;
        },
        100000);
    return names;
}

}  // namespace vigil
