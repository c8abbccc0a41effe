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
    planGroups(requests);
    size_t count = groups_.size();
    local_.resize(count);
    remote_.resize(count);
    scratch_.resize(scratchSize_);
    for (size_t i = 0; i < count; ++i) {
        const Group& group = groups_[i];
        void* out =
            group.requests == 1 ? requests[group.first].out : scratch_.data() + group.scratch;
        local_[i] = {out, group.end - group.start};
        remote_[i] = {reinterpret_cast<void*>(group.start), group.end - group.start};
    }
    ++reads_;
    ssize_t got = process_vm_readv(pid_, local_.data(), count, remote_.data(), count, 0);
    if (got < 0 && (errno == EPERM || errno == ESRCH)) throwReadError();
    // The kernel stops at the first place it cannot read in full.
    size_t done = 0;
    size_t bytes = got < 0 ? 0 : got;
    for (const Group& group : groups_) {
        if (bytes < group.end - group.start) break;
        bytes -= group.end - group.start;
        for (size_t r = group.first; group.requests > 1 && r < group.first + group.requests; ++r) {
            std::memcpy(requests[r].out,
                        scratch_.data() + group.scratch + (requests[r].address - group.start),
                        requests[r].size);
        }
        done += group.requests;
    }
    if (done == requests.size() || done < groupedRequests_) return done;
    return done + MemorySource::readMany(requests.subspan(done));
}

void ProcessMemory::planGroups(std::span<const ReadRequest> requests) {
    // Consecutive requests for nearby places become one place to read: the
    // kernel's cost is mostly per place (and page), not per byte.
    groups_.clear();
    scratchSize_ = 0;
    groupedRequests_ = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
        const ReadRequest& request = requests[i];
        uint64_t end = request.address + request.size;
        if (!groups_.empty()) {
            Group& group = groups_.back();
            uint64_t start = std::min(group.start, request.address);
            uint64_t last = std::max(group.end, end);
            bool near = request.address + kCoalesceGap >= group.start &&
                        request.address <= group.end + kCoalesceGap;
            if (near && last - start <= kMaxCoalesced) {
                group.start = start;
                group.end = last;
                ++group.requests;
                ++groupedRequests_;
                continue;
            }
        }
        if (groups_.size() == IOV_MAX) break;
        groups_.push_back({request.address, end, i, 1, 0});
        ++groupedRequests_;
    }
    for (Group& group : groups_) {
        if (group.requests == 1) continue;
        group.scratch = scratchSize_;
        scratchSize_ += group.end - group.start;
    }
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
