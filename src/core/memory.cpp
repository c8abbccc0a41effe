#include "core/memory.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
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

size_t MemorySource::readMany(std::span<const ReadRequest> requests) {
    size_t done = 0;
    while (done < requests.size() &&
           read(requests[done].address, requests[done].out, requests[done].size)) {
        ++done;
    }
    return done;
}

void ProcessMemory::throwReadError() const {
    if (errno == EPERM) {
        throw PermissionError(fmt::format(
            "not allowed to read the memory of process {}: run vigil as the same user or as "
            "root, or grant CAP_SYS_PTRACE (containers need --cap-add SYS_PTRACE; check "
            "/proc/sys/kernel/yama/ptrace_scope)",
            pid_));
    }
    throw ProcessExitedError(fmt::format("process {} exited while it was being read", pid_));
}

bool ProcessMemory::read(uint64_t address, void* out, size_t size) {
    ++reads_;
    iovec local{out, size};
    iovec remote{reinterpret_cast<void*>(address), size};
    ssize_t got = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (got == static_cast<ssize_t>(size)) return true;
    if (got < 0 && (errno == EPERM || errno == ESRCH)) throwReadError();
    return false;
}

size_t ProcessMemory::readMany(std::span<const ReadRequest> requests) {
    size_t count = std::min<size_t>(requests.size(), IOV_MAX);
    local_.resize(count);
    remote_.resize(count);
    for (size_t i = 0; i < count; ++i) {
        local_[i] = {requests[i].out, requests[i].size};
        remote_[i] = {reinterpret_cast<void*>(requests[i].address), requests[i].size};
    }
    ++reads_;
    ssize_t got = process_vm_readv(pid_, local_.data(), count, remote_.data(), count, 0);
    if (got < 0 && (errno == EPERM || errno == ESRCH)) throwReadError();
    // The kernel stops at the first request it cannot read in full.
    size_t done = 0;
    for (size_t bytes = got < 0 ? 0 : got; done < count && bytes >= requests[done].size; ++done) {
        bytes -= requests[done].size;
    }
    if (done == count && count < requests.size()) {
        done += MemorySource::readMany(requests.subspan(count));
    }
    return done;
}

bool BufferMemory::read(uint64_t address, void* out, size_t size) {
    ++reads_;
    if (address < base_ || address - base_ > bytes_.size() ||
        size > bytes_.size() - (address - base_)) {
        return false;
    }
    std::memcpy(out, bytes_.data() + (address - base_), size);
    return true;
}

}  // namespace vigil
