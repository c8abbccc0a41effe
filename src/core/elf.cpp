#include "core/elf.h"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>

#include "core/errors.h"

namespace vigil {

namespace {

// libelf requires elf_version() before any other call; a function-local
// static makes that happen exactly once, even with several threads.
void initLibelf() {
    static const bool initialized = elf_version(EV_CURRENT) != EV_NONE;
    if (!initialized) throw Error(ExitCode::kInternal, "libelf: elf_version() failed");
}

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
    throw BadFileError(path + ": " + problem);
}

// Usually a truncated copy, but a corrupt offset or size looks the same.
[[noreturn]] void failPastEnd(const std::string& path, const std::string& what) {
    fail(path, "truncated or corrupt ELF file (" + what + " past the end of the file)");
}

// `error` is a libelf error number; -1 means the most recent one.
[[noreturn]] void failLibelf(const std::string& path, const std::string& what, int error = -1) {
    fail(path, "corrupt ELF file (" + what + ": " + elf_errmsg(error) + ")");
}

// True if [offset, offset + size) lies inside a file of `fileSize` bytes,
// written so that a huge offset or size cannot overflow.
bool fitsInFile(uint64_t offset, uint64_t size, uint64_t fileSize) {
    return offset <= fileSize && size <= fileSize - offset;
}

std::string toHex(const unsigned char* bytes, size_t count) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(count * 2);
    for (size_t i = 0; i < count; ++i) {
        hex += kDigits[bytes[i] >> 4];
        hex += kDigits[bytes[i] & 0xf];
    }
    return hex;
}

// libelf quietly reports zero program or section headers when their table
// lies past the end of the file, which would make a truncated file look like
// one without symbols. Check the tables the ELF header announces instead.
void checkHeaderTablesFit(const std::string& path, const GElf_Ehdr& header, uint64_t fileSize) {
    // With extended numbering (e_phnum == PN_XNUM, or e_shnum == 0 while
    // e_shoff != 0) the real count lives in section 0; libelf reads it, and
    // the table has at least one entry either way.
    uint64_t programHeaders = header.e_phnum == PN_XNUM ? 1 : header.e_phnum;
    uint64_t sectionHeaders = header.e_shnum == 0 ? 1 : header.e_shnum;
    if (programHeaders != 0 &&
        !fitsInFile(header.e_phoff, programHeaders * header.e_phentsize, fileSize)) {
        failPastEnd(path, "program headers extend");
    }
    if (header.e_shoff != 0 &&
        !fitsInFile(header.e_shoff, sectionHeaders * header.e_shentsize, fileSize)) {
        failPastEnd(path, "section headers extend");
    }
}

std::string hexNumber(uint64_t number) {
    char text[24];
    std::snprintf(text, sizeof text, "%#" PRIx64, number);
    return text;
}

// The kernel's page size, which is how /proc/PID/maps offsets are aligned.
uint64_t pageSize() {
    static const uint64_t size = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    return size;
}

uint64_t pageStart(uint64_t address) {
    return address & ~(pageSize() - 1);
}

// A symbol table's entries and its string table, both owned by libelf and
// valid as long as the Elf handle.
struct SymbolTable {
    const Elf64_Sym* symbols = nullptr;
    size_t count = 0;
    const char* names = nullptr;
    size_t namesSize = 0;
};

struct FoundSymbol {
    uint64_t value;
    bool local;
};

// The first section of `type` (SHT_SYMTAB or SHT_DYNSYM), or an empty table.
SymbolTable loadSymbolTable(Elf* elf, const std::string& path, uint32_t type) {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
        GElf_Shdr header;
        if (gelf_getshdr(scn, &header) == nullptr || header.sh_type != type) continue;
        Elf_Data* symbols = elf_getdata(scn, nullptr);
        if (symbols == nullptr) failLibelf(path, "symbol table");
        if (symbols->d_type != ELF_T_SYM) fail(path, "corrupt ELF file (malformed symbol table)");
        Elf_Scn* namesSection = elf_getscn(elf, header.sh_link);
        Elf_Data* names = namesSection ? elf_getdata(namesSection, nullptr) : nullptr;
        if (names == nullptr) failLibelf(path, "symbol name table");
        // The file is 64-bit and libelf has converted the entries to host
        // byte order, so they can be read in place.
        return SymbolTable{static_cast<const Elf64_Sym*>(symbols->d_buf),
                           symbols->d_size / sizeof(Elf64_Sym),
                           static_cast<const char*>(names->d_buf), names->d_size};
    }
    return SymbolTable{};
}

// Compares without strlen() and never reads past the string table, which a
// corrupt st_name could otherwise make us do.
bool hasName(const SymbolTable& table, const Elf64_Sym& symbol, std::string_view name) {
    if (symbol.st_name >= table.namesSize || table.namesSize - symbol.st_name <= name.size()) {
        return false;
    }
    const char* candidate = table.names + symbol.st_name;
    return candidate[name.size()] == '\0' && std::memcmp(candidate, name.data(), name.size()) == 0;
}

bool isDefinition(const Elf64_Sym& symbol) {
    int kind = ELF64_ST_TYPE(symbol.st_info);
    return symbol.st_shndx != SHN_UNDEF && kind != STT_SECTION && kind != STT_FILE;
}

// A linear scan: ~15k entries of libpython's .symtab take tens of
// microseconds, far less than building a hash index of all of them, and
// vigil only ever asks for a handful of names. The first global or weak
// definition wins; failing that, the first local one (a file-static variable).
std::optional<FoundSymbol> findInTable(const SymbolTable& table, std::string_view name) {
    std::optional<FoundSymbol> local;
    for (size_t i = 0; i < table.count; ++i) {
        const Elf64_Sym& symbol = table.symbols[i];
        if (!isDefinition(symbol) || !hasName(table, symbol, name)) continue;
        if (ELF64_ST_BIND(symbol.st_info) != STB_LOCAL) return FoundSymbol{symbol.st_value, false};
        if (!local) local = FoundSymbol{symbol.st_value, true};
    }
    return local;
}

}  // namespace

// Symbol tables are loaded on first use (.symtab can be hundreds of KiB), and
// every answer is remembered. The mutex makes const lookups thread-safe.
struct ElfFile::SymbolCache {
    std::mutex mutex;
    std::optional<SymbolTable> dynamicSymbols;
    std::optional<SymbolTable> allSymbols;
    std::unordered_map<std::string, std::optional<uint64_t>, TransparentStringHash, std::equal_to<>>
        answers;
};

ElfFile ElfFile::open(const std::string& path) {
    initLibelf();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
    // ELF_C_READ reads sections with pread() on demand instead of mmap()ing
    // the file: a library replaced or truncated on disk while vigil reads it
    // then gives a read error rather than a SIGBUS.
    Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
    ElfFile file(path, fd, elf);  // owns fd and elf from here on
    file.readHeaders();
    file.readSections();
    file.readSegments();
    file.readBuildId();
    return file;
}

ElfFile::ElfFile(std::string path, int fd, Elf* elf)
    : path_(std::move(path)), fd_(fd), elf_(elf), symbolCache_(std::make_unique<SymbolCache>()) {}

ElfFile::ElfFile(ElfFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      elf_(std::exchange(other.elf_, nullptr)),
      fileSize_(other.fileSize_),
      type_(other.type_),
      sections_(std::move(other.sections_)),
      segments_(std::move(other.segments_)),
      buildId_(std::move(other.buildId_)),
      symbolCache_(std::move(other.symbolCache_)) {}

ElfFile& ElfFile::operator=(ElfFile&& other) noexcept {
    if (this != &other) {
        close();
        path_ = std::move(other.path_);
        fd_ = std::exchange(other.fd_, -1);
        elf_ = std::exchange(other.elf_, nullptr);
        fileSize_ = other.fileSize_;
        type_ = other.type_;
        sections_ = std::move(other.sections_);
        segments_ = std::move(other.segments_);
        buildId_ = std::move(other.buildId_);
        symbolCache_ = std::move(other.symbolCache_);
    }
    return *this;
}

ElfFile::~ElfFile() {
    close();
}

void ElfFile::close() noexcept {
    if (elf_ != nullptr) elf_end(elf_);
    if (fd_ >= 0) ::close(fd_);
    elf_ = nullptr;
    fd_ = -1;
}

bool ElfFile::isSharedObject() const {
    return type_ == ET_DYN;
}

void ElfFile::readHeaders() {
    struct stat status {};
    if (fstat(fd_, &status) != 0) fail(path_, std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(status.st_mode)) fail(path_, "not a regular file");
    if (status.st_size == 0) fail(path_, "empty file, not an ELF file");
    fileSize_ = static_cast<uint64_t>(status.st_size);
    if (elf_ == nullptr) failLibelf(path_, "elf_begin");
    if (elf_kind(elf_) != ELF_K_ELF) fail(path_, "not an ELF file");
    int elfClass = gelf_getclass(elf_);
    if (elfClass == ELFCLASS32) fail(path_, "32-bit ELF is not supported");
    if (elfClass != ELFCLASS64) fail(path_, "not an ELF file (unknown ELF class)");
    GElf_Ehdr header;
    if (gelf_getehdr(elf_, &header) == nullptr) failLibelf(path_, "ELF header");
    type_ = header.e_type;
    checkHeaderTablesFit(path_, header, fileSize_);
}

void ElfFile::readSections() {
    size_t namesIndex = 0;
    if (elf_getshdrstrndx(elf_, &namesIndex) != 0) failLibelf(path_, "section name table");
    elf_errno();  // clear any stale error so that the check after the loop is reliable
    for (Elf_Scn* scn = elf_nextscn(elf_, nullptr); scn != nullptr; scn = elf_nextscn(elf_, scn)) {
        GElf_Shdr header;
        if (gelf_getshdr(scn, &header) == nullptr) failLibelf(path_, "section header");
        if (header.sh_type != SHT_NOBITS &&
            !fitsInFile(header.sh_offset, header.sh_size, fileSize_)) {
            failPastEnd(path_, "a section extends");
        }
        const char* name = elf_strptr(elf_, namesIndex, header.sh_name);
        if (name == nullptr) failLibelf(path_, "section name");
        sections_.try_emplace(name, Section{header.sh_addr, header.sh_size, header.sh_offset});
    }
    // elf_nextscn() also returns null on error, e.g. a section header table
    // that lies past the end of a truncated file.
    if (int error = elf_errno(); error != 0) failLibelf(path_, "section headers", error);
}

void ElfFile::readSegments() {
    size_t count = 0;
    if (elf_getphdrnum(elf_, &count) != 0) failLibelf(path_, "program headers");
    for (size_t i = 0; i < count; ++i) {
        GElf_Phdr header;
        if (gelf_getphdr(elf_, static_cast<int>(i), &header) == nullptr) {
            failLibelf(path_, "program header");
        }
        if (header.p_type != PT_LOAD) continue;
        if (!fitsInFile(header.p_offset, header.p_filesz, fileSize_)) {
            failPastEnd(path_, "a loadable segment extends");
        }
        segments_.push_back(LoadSegment{header.p_vaddr, header.p_offset, header.p_filesz,
                                        header.p_memsz, (header.p_flags & PF_W) != 0,
                                        (header.p_flags & PF_X) != 0});
    }
}

void ElfFile::readBuildId() {
    // Linkers put the build ID in its own SHT_NOTE section; scanning all note
    // sections also finds it when the section has an unusual name.
    for (Elf_Scn* scn = elf_nextscn(elf_, nullptr); scn != nullptr; scn = elf_nextscn(elf_, scn)) {
        GElf_Shdr header;
        if (gelf_getshdr(scn, &header) == nullptr || header.sh_type != SHT_NOTE) continue;
        Elf_Data* data = elf_getdata(scn, nullptr);
        if (data == nullptr) failLibelf(path_, "note section");
        GElf_Nhdr note;
        size_t nameOffset = 0;
        size_t descOffset = 0;
        for (size_t offset = 0;
             (offset = gelf_getnote(data, offset, &note, &nameOffset, &descOffset)) > 0;) {
            const auto* bytes = static_cast<const unsigned char*>(data->d_buf);
            bool isGnu = note.n_namesz == 4 && std::memcmp(bytes + nameOffset, "GNU", 4) == 0;
            if (isGnu && note.n_type == NT_GNU_BUILD_ID) {
                buildId_ = toHex(bytes + descOffset, note.n_descsz);
                return;
            }
        }
    }
}

std::optional<Section> ElfFile::section(std::string_view name) const {
    auto found = sections_.find(name);
    if (found == sections_.end()) return std::nullopt;
    return found->second;
}

std::optional<uint64_t> ElfFile::symbolAddress(std::string_view name) const {
    std::lock_guard<std::mutex> lock(symbolCache_->mutex);
    auto& answers = symbolCache_->answers;
    if (auto known = answers.find(name); known != answers.end()) return known->second;
    std::optional<uint64_t> address = findSymbol(name);
    answers.emplace(name, address);
    return address;
}

// .dynsym is searched first only because it is small: an exported symbol is
// found without reading .symtab, with the same value, since both tables
// describe the same definition. .symtab adds the symbols a stripped file lacks
// (hidden and file-static ones), and a global definition beats a local one.
std::optional<uint64_t> ElfFile::findSymbol(std::string_view name) const {
    SymbolCache& cache = *symbolCache_;
    if (!cache.dynamicSymbols) cache.dynamicSymbols = loadSymbolTable(elf_, path_, SHT_DYNSYM);
    std::optional<FoundSymbol> found = findInTable(*cache.dynamicSymbols, name);
    if (found && !found->local) return found->value;
    if (!cache.allSymbols) cache.allSymbols = loadSymbolTable(elf_, path_, SHT_SYMTAB);
    std::optional<FoundSymbol> fromAll = findInTable(*cache.allSymbols, name);
    std::optional<FoundSymbol> best = fromAll ? fromAll : found;
    if (!best) return std::nullopt;
    return best->value;
}

uint64_t loadBias(const std::vector<LoadSegment>& segments, uint64_t mapStart,
                  uint64_t mapFileOffset) {
    const LoadSegment* covering = nullptr;
    for (const LoadSegment& segment : segments) {
        uint64_t first = pageStart(segment.fileOffset);
        uint64_t end = segment.fileOffset + segment.fileSize;
        if (first == mapFileOffset) {  // the segment starts on this page: best match
            covering = &segment;
            break;
        }
        if (covering == nullptr && first <= mapFileOffset && mapFileOffset < end) {
            covering = &segment;
        }
    }
    if (covering == nullptr) {
        throw BadFileError("no loadable segment of the file covers mapped file offset " +
                           hexNumber(mapFileOffset) + "; the file on disk is not the one mapped");
    }
    return mapStart - (covering->vaddr + mapFileOffset - covering->fileOffset);
}

}  // namespace vigil
