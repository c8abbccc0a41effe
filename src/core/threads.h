// Facts about threads that the thread state does not hold directly: which
// one has the GIL, the kernel thread id before 3.11, and threading's names.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/layout.h"
#include "core/memory.h"
#include "core/objects.h"

namespace vigil {

// Where the GIL of interpreter interp keeps its "locked" flag (an int) and
// its last holder (a thread state pointer). Fixed for the life of the
// interpreter, so callers may remember it.
struct GilLocation {
    uint64_t locked = 0;
    uint64_t holder = 0;
};
std::optional<GilLocation> gilLocation(MemorySource& memory, const PyLayout& layout,
                                       uint64_t runtime, uint64_t interp);

// The thread state holding the GIL of interpreter interp, 0 when it is free.
uint64_t gilHolder(MemorySource& memory, const PyLayout& layout, uint64_t runtime, uint64_t interp);

// Before 3.11 a thread state knows only its pthread_t. glibc keeps the kernel
// thread id inside struct pthread at an offset private to the C library, so
// it is learnt from the process itself: the offset at which every known
// pthread holds a distinct id of one of the process's tasks.
class NativeThreadIds {
  public:
    // From a single pthread, only the process id itself (the main thread's
    // task id) is trusted: a small field could equal some task id by chance.
    bool learn(MemorySource& memory, const std::vector<uint64_t>& pthreads,
               const std::vector<pid_t>& tasks, pid_t pid);
    std::optional<pid_t> lookup(MemorySource& memory, uint64_t pthread) const;
    std::optional<size_t> offset() const { return offset_; }

    static constexpr size_t kSearchBytes = 2048;

  private:
    std::optional<size_t> offset_;
};

// threading.get_ident() -> Thread.name, from threading._active; empty when
// threading was never imported or the dict cannot be read.
std::unordered_map<uint64_t, std::string> threadNames(ObjectReader& objects, uint64_t interp);

}  // namespace vigil
