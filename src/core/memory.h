// Memory sources: where the walker reads interpreter structures from.
//
// One walker, several sources: a live process read with process_vm_readv
// (ProcessMemory) and, in tests, a buffer standing in for a process
// (BufferMemory). A read never faults: it either fills the whole buffer and
// returns true, or returns false.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vigil {

struct ReadRequest {
    uint64_t address;
    void* out;
    size_t size;
};

class MemorySource {
  public:
    virtual ~MemorySource() = default;

    // Copies size bytes at address into out; false if any byte is unreadable.
    virtual bool read(uint64_t address, void* out, size_t size) = 0;

    // Reads the requests in order, in as few system calls as the source
    // allows; returns how many of them, from the first, were read whole.
    virtual size_t readMany(std::span<const ReadRequest> requests);

    template <typename T>
    bool readValue(uint64_t address, T& out) {
        return read(address, &out, sizeof(T));
    }
    bool readPointer(uint64_t address, uint64_t& out) { return readValue(address, out); }

    // Reads a NUL-terminated string of at most maxLength bytes.
    std::string readCString(uint64_t address, size_t maxLength = 256);

    uint64_t readCount() const { return reads_; }

  protected:
    uint64_t reads_ = 0;
};

// Reads another process's memory without stopping it.
class ProcessMemory final : public MemorySource {
  public:
    explicit ProcessMemory(pid_t pid) : pid_(pid) {}

    // Throws PermissionError when the kernel refuses and ProcessExitedError
    // when the process is gone; an unmapped address only returns false.
    bool read(uint64_t address, void* out, size_t size) override;
    // One process_vm_readv for up to IOV_MAX places; nearby requests share one.
    size_t readMany(std::span<const ReadRequest> requests) override;
    pid_t pid() const { return pid_; }

  private:
    // Consecutive requests read as one place.
    struct Group {
        uint64_t start;
        uint64_t end;
        size_t first;     // index of its first request
        size_t requests;  // how many
        size_t scratch;   // where it lands in scratch_ (groups of several)
    };
    static constexpr uint64_t kCoalesceGap = 4096;
    static constexpr uint64_t kMaxCoalesced = 16384;

    [[noreturn]] void throwReadError() const;
    void planGroups(std::span<const ReadRequest> requests);

    pid_t pid_;
    std::vector<iovec> local_;
    std::vector<iovec> remote_;
    std::vector<Group> groups_;
    std::vector<uint8_t> scratch_;
    size_t scratchSize_ = 0;
    size_t groupedRequests_ = 0;  // requests covered by groups_ (IOV_MAX may cut)
};

// A span of bytes standing at a given address: lets tests build fake
// interpreter structures, and lets the walker decode frames it copied in bulk.
class BufferMemory final : public MemorySource {
  public:
    BufferMemory(uint64_t base, std::span<const uint8_t> bytes) : base_(base), bytes_(bytes) {}
    bool read(uint64_t address, void* out, size_t size) override;

  private:
    uint64_t base_;
    std::span<const uint8_t> bytes_;
};

}  // namespace vigil
