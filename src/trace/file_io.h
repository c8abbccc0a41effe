// The few file operations of the trace on plain descriptors: the writer's
// thread must see every failure with its errno (a full disk stops the
// recording, it never throws into the application), and the reader must
// read files that another process is still appending to.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace vigil::trace {

class File {
  public:
    File() = default;
    // open(2) with O_CLOEXEC added; check valid(), errno says why not.
    File(const std::string& path, int flags, mode_t mode = 0644);
    ~File();
    File(File&& other) noexcept;
    File& operator=(File&& other) noexcept;
    File(const File&) = delete;
    File& operator=(const File&) = delete;

    bool valid() const { return fd_ >= 0; }
    // All of it, resuming short writes: 0, or the errno of the failure.
    int write(std::string_view bytes);
    // Up to `size` bytes at `offset`: fewer at the end of the file (or on
    // an error: errno is then set).
    std::string readAt(uint64_t offset, size_t size) const;
    // The whole file from `offset`.
    std::string readFrom(uint64_t offset) const;
    // -1 when fstat fails.
    int64_t size() const;
    // 0, or the errno of the failure.
    int truncate(int64_t size);

  private:
    int fd_ = -1;
};

// strerror(error), thread-safe.
std::string errorText(int error);

}  // namespace vigil::trace
