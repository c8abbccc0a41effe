// A read-only view of a 64-bit ELF file on disk: symbols, sections, PT_LOAD
// segments and the GNU build ID, which is what vigil needs to find CPython's
// globals (e.g. _PyRuntime) in a file mapped into another process.
//
// Everything but the symbol table is read and validated when the file is
// opened, so a corrupt file fails early with one BadFileError. Symbol tables
// are read on the first symbolAddress() call that needs them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

typedef struct Elf Elf;  // libelf's handle; keeps <libelf.h> out of this header

namespace vigil {

struct Section {
    uint64_t address;     // sh_addr: link-time virtual address (0 if not allocated)
    uint64_t size;        // sh_size
    uint64_t fileOffset;  // sh_offset (meaningless for SHT_NOBITS such as .bss)
};

struct LoadSegment {
    uint64_t vaddr;       // p_vaddr
    uint64_t fileOffset;  // p_offset
    uint64_t fileSize;    // p_filesz
    uint64_t memSize;     // p_memsz
    bool writable;
    bool executable;
};

class ElfFile {
  public:
    // Throws BadFileError if the file is missing, unreadable, not ELF, 32-bit,
    // or its headers do not fit inside the file.
    static ElfFile open(const std::string& path);

    ElfFile(ElfFile&& other) noexcept;
    ElfFile& operator=(ElfFile&& other) noexcept;
    ElfFile(const ElfFile&) = delete;
    ElfFile& operator=(const ElfFile&) = delete;
    ~ElfFile();

    const std::string& path() const { return path_; }
    uint16_t type() const { return type_; }  // e_type: ET_EXEC, ET_DYN, ...
    // True for ET_DYN, i.e. shared objects and PIE executables: both are
    // loaded at an address chosen at run time, so they have a load bias.
    bool isSharedObject() const;

    // st_value of a defined (not SHN_UNDEF) symbol `name`, from .symtab or
    // .dynsym; a global or weak definition wins over a local one of the same
    // name. Answers are cached, so repeated lookups are a hash-map hit.
    // Throws BadFileError if a symbol table turns out to be unreadable.
    std::optional<uint64_t> symbolAddress(std::string_view name) const;

    std::optional<Section> section(std::string_view name) const;
    const std::vector<LoadSegment>& loadSegments() const { return segments_; }
    // Lower-case hex of the NT_GNU_BUILD_ID note, or "" if there is none.
    const std::string& buildId() const { return buildId_; }

  private:
    // Lets an unordered_map<std::string, ...> be searched with a string_view
    // without building a std::string.
    struct TransparentStringHash {
        using is_transparent = void;
        size_t operator()(std::string_view text) const {
            return std::hash<std::string_view>{}(text);
        }
    };
    struct SymbolCache;

    ElfFile(std::string path, int fd, Elf* elf);
    void readHeaders();
    void readSections();
    void readSegments();
    void readBuildId();
    std::optional<uint64_t> findSymbol(std::string_view name) const;
    void close() noexcept;

    std::string path_;
    int fd_ = -1;
    Elf* elf_ = nullptr;
    uint64_t fileSize_ = 0;
    uint16_t type_ = 0;
    std::unordered_map<std::string, Section, TransparentStringHash, std::equal_to<>> sections_;
    std::vector<LoadSegment> segments_;
    std::string buildId_;
    // Behind a pointer so that ElfFile stays movable (std::mutex is not).
    std::unique_ptr<SymbolCache> symbolCache_;
};

// The load bias of a mapping of an ELF file: the value to add to a link-time
// address (st_value, sh_addr, p_vaddr) to get the address in the process.
//
// `mapStart` and `mapFileOffset` are a mapping's start address and file
// offset as shown in /proc/PID/maps. The kernel maps a PT_LOAD segment so that
// file offset p_offset lands at p_vaddr + bias, rounding both down to a page
// boundary (p_vaddr and p_offset are congruent modulo the page size). Any file
// offset `o` covered by the segment therefore lives at p_vaddr + (o - p_offset)
// + bias, which gives
//
//     bias = mapStart - (p_vaddr + mapFileOffset - p_offset)
//
// (unsigned, wrapping arithmetic; exact even when mapFileOffset is the page
// rounded-down p_offset). This also holds for a mapping that starts in the
// middle of a segment, e.g. after RELRO mprotect() split the writable segment.
// The segment is the one whose page-rounded file range contains mapFileOffset,
// preferring one that starts on that page when two segments share it.
// For a non-PIE executable the result is 0. Throws BadFileError if no PT_LOAD
// segment covers mapFileOffset (the file is not the one that was mapped).
uint64_t loadBias(const std::vector<LoadSegment>& segments, uint64_t mapStart,
                  uint64_t mapFileOffset);

}  // namespace vigil
