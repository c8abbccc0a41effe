// CRC-32 (IEEE 802.3: the one of zlib, gzip and PNG) over the trace's
// headers and payloads: a torn write or a flipped byte is told apart from a
// record written whole, so the reader can name the first bad block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vigil::trace {

// `crc` continues an earlier call over the bytes that came before.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

inline uint32_t crc32(std::string_view bytes) {
    return crc32(bytes.data(), bytes.size());
}

}  // namespace vigil::trace
