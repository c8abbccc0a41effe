#include "core/memory.h"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/errors.h"

namespace vigil {

std::string MemorySource::readCString(uint64_t address, size_t maxLength) {
    std::string result;
    char chunk[64];
    while (result.size() < maxLength) {
        size_t want = std::min(sizeof(chunk), maxLength - result.size());
        // A string may end just before an unmapped page: fall back to small reads.
        if (!read(address + result.size(), chunk, want)) {
            if (want == 1 || !read(address + result.size(), chunk, 1)) break;
            want = 1;
        }
        size_t length = strnlen(chunk, want);
        result.append(chunk, length);
        if (length < want) break;
    }
    return result;
}

bool ProcessMemory::read(uint64_t address, void* out, size_t size) {
    ++reads_;
    iovec local{out, size};
    iovec remote{reinterpret_cast<void*>(address), size};
    ssize_t got = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (got == static_cast<ssize_t>(size)) return true;
    if (got < 0 && errno == EPERM) {
        throw PermissionError(fmt::format(
            "not allowed to read the memory of process {}: run vigil as the same user or as "
            "root, or grant CAP_SYS_PTRACE (containers need --cap-add SYS_PTRACE; check "
            "/proc/sys/kernel/yama/ptrace_scope)",
            pid_));
    }
    if (got < 0 && errno == ESRCH) {
        throw ProcessExitedError(fmt::format("process {} exited while it was being read", pid_));
    }
    return false;
}

bool BufferMemory::read(uint64_t address, void* out, size_t size) {
    ++reads_;
    if (address < base_ || address - base_ > bytes_.size() || size > bytes_.size() - (address - base_)) {
        return false;
    }
    std::memcpy(out, bytes_.data() + (address - base_), size);
    return true;
}

}  // namespace vigil
