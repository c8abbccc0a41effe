#include "trace/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace vigil::trace {

File::File(const std::string& path, int flags, mode_t mode)
    : fd_(::open(path.c_str(), flags | O_CLOEXEC, mode)) {}

File::~File() {
    if (fd_ >= 0) ::close(fd_);
}

File::File(File&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

File& File::operator=(File&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

int File::write(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t written = ::write(fd_, bytes.data(), bytes.size());
        if (written < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        bytes.remove_prefix(static_cast<size_t>(written));
    }
    return 0;
}

std::string File::readAt(uint64_t offset, size_t size) const {
    std::string bytes(size, '\0');
    size_t done = 0;
    while (done < size) {
        ssize_t got =
            ::pread(fd_, bytes.data() + done, size - done, static_cast<off_t>(offset + done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        done += static_cast<size_t>(got);
    }
    bytes.resize(done);
    return bytes;
}

std::string File::readFrom(uint64_t offset) const {
    int64_t total = size();
    if (total < 0 || static_cast<uint64_t>(total) <= offset) return {};
    return readAt(offset, static_cast<size_t>(static_cast<uint64_t>(total) - offset));
}

int64_t File::size() const {
    struct stat status {};
    return ::fstat(fd_, &status) == 0 ? static_cast<int64_t>(status.st_size) : -1;
}

int File::truncate(int64_t size) {
    return ::ftruncate(fd_, size) == 0 ? 0 : errno;
}

std::string errorText(int error) {
    char buffer[128];
    return ::strerror_r(error, buffer, sizeof(buffer));
}

}  // namespace vigil::trace
