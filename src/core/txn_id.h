// Transaction ids that people can say aloud: adjective_surname_xxxx, e.g.
// "angry_einstein_7f3a". 128 adjectives (7 bits), 256 surnames (8 bits) and
// 4 hex digits (16 bits) hold 31 bits: 2^31 ids, all different, before they
// repeat.
//
// Uniqueness is guaranteed, not probable: ids come from a counter, and a
// fixed bijection of [0, 2^31) maps each counter value to an id, so that
// consecutive ids look unrelated. The counter lives in a file shared by all
// the processes of one user on the host (<dir>/vigil-txn-<euid>), so that
// ids of concurrent processes never collide either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace vigil {

class TxnIdSource {
  public:
    // The longest id, without its NUL.
    static constexpr size_t kMaxLength = 31;
    static constexpr uint32_t kIdBits = 31;
    static constexpr uint32_t kIdMask = (uint32_t{1} << kIdBits) - 1;

    // Maps (creating it if needed) the user's counter file in dir. Never
    // throws: when the file cannot be used, a counter shared with this
    // process's forks only is used instead and fallbackReason() says why.
    static TxnIdSource open(const std::string& dir);

    TxnIdSource(TxnIdSource&& other) noexcept;
    TxnIdSource& operator=(TxnIdSource&& other) noexcept;
    ~TxnIdSource();

    // Writes the next id, NUL-terminated, into out (kMaxLength + 1 bytes) and
    // returns its length. Allocation-free, lock-free, thread-safe.
    size_t next(char* out);

    // The id of a counter value (its low 31 bits), as next() writes it.
    static size_t format(uint32_t counter, char* out);

    // The bijection of [0, 2^31) from counter values to ids, and its inverse.
    static uint32_t mix(uint32_t counter);
    static uint32_t unmix(uint32_t mixed);

    static std::span<const std::string_view> adjectives();
    static std::span<const std::string_view> surnames();

    // Empty when the shared counter file is used; else one line for the log.
    const std::string& fallbackReason() const { return fallbackReason_; }

    struct Counter;  // the layout of the counter file

  private:
    TxnIdSource() = default;
    void release();

    Counter* counter_ = nullptr;
    size_t mappedBytes_ = 0;  // 0 when counter_ is owned_ rather than mapped
    std::unique_ptr<Counter> owned_;
    std::string fallbackReason_;
};

}  // namespace vigil
