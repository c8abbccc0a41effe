#include "core/elf.h"

#include <elf.h>
#include <glob.h>
#include <link.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/errors.h"

// Symbols of this test binary whose link-time addresses are compared with
// their run-time ones: one in the writable data segment, one in the text.
extern "C" {
__attribute__((used)) int vigil_elf_test_data_marker = 0x5a5a;
__attribute__((used, noinline)) int vigil_elf_test_text_marker() {
    return 42;
}
}

namespace vigil {
namespace {

namespace fs = std::filesystem;

struct Mapping {
    uint64_t start = 0;
    uint64_t end = 0;
    uint64_t fileOffset = 0;
    std::string path;
};

std::vector<Mapping> selfMappings() {
    std::ifstream maps("/proc/self/maps");
    std::vector<Mapping> mappings;
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        Mapping mapping;
        std::string range, perms, device, inode;
        fields >> range >> perms >> std::hex >> mapping.fileOffset >> device >> inode;
        std::getline(fields >> std::ws, mapping.path);
        size_t dash = range.find('-');
        mapping.start = std::stoull(range.substr(0, dash), nullptr, 16);
        mapping.end = std::stoull(range.substr(dash + 1), nullptr, 16);
        mappings.push_back(mapping);
    }
    return mappings;
}

Mapping mappingContaining(uint64_t address) {
    for (const Mapping& mapping : selfMappings()) {
        if (mapping.start <= address && address < mapping.end) return mapping;
    }
    ADD_FAILURE() << "no mapping contains " << std::hex << address;
    return {};
}

uint64_t addressOf(const void* pointer) {
    return reinterpret_cast<uint64_t>(pointer);
}

// The symbol's link-time address plus the bias computed from the mapping it
// lives in must be exactly where the symbol is in this process.
void expectSymbolAtRunTimeAddress(const char* name, uint64_t runTimeAddress) {
    Mapping mapping = mappingContaining(runTimeAddress);
    ASSERT_FALSE(mapping.path.empty());
    ElfFile file = ElfFile::open(mapping.path);
    std::optional<uint64_t> linkTime = file.symbolAddress(name);
    ASSERT_TRUE(linkTime.has_value()) << name;
    uint64_t bias = loadBias(file.loadSegments(), mapping.start, mapping.fileOffset);
    EXPECT_EQ(*linkTime + bias, runTimeAddress) << name;
}

TEST(ElfSelf, DataSymbolMatchesRunTimeAddress) {
    expectSymbolAtRunTimeAddress("vigil_elf_test_data_marker",
                                 addressOf(&vigil_elf_test_data_marker));
}

TEST(ElfSelf, TextSymbolMatchesRunTimeAddress) {
    expectSymbolAtRunTimeAddress("vigil_elf_test_text_marker",
                                 addressOf(reinterpret_cast<void*>(&vigil_elf_test_text_marker)));
}

// The writable segment is usually split in two by RELRO's mprotect(), so the
// executable has mappings that start mid-segment: all must agree.
TEST(ElfSelf, EveryMappingOfTheExecutableGivesTheSameBias) {
    Mapping text = mappingContaining(addressOf(&vigil_elf_test_data_marker));
    ElfFile file = ElfFile::open(text.path);
    uint64_t expected = loadBias(file.loadSegments(), text.start, text.fileOffset);
    int checked = 0;
    for (const Mapping& mapping : selfMappings()) {
        if (mapping.path != text.path) continue;
        EXPECT_EQ(loadBias(file.loadSegments(), mapping.start, mapping.fileOffset), expected)
            << "mapping at " << std::hex << mapping.start;
        ++checked;
    }
    EXPECT_GE(checked, 2);
}

TEST(ElfSelf, UnknownSymbolIsAbsentAndRepeatedLookupsAgree) {
    ElfFile file = ElfFile::open("/proc/self/exe");
    EXPECT_FALSE(file.symbolAddress("vigil_no_such_symbol").has_value());
    EXPECT_FALSE(file.symbolAddress("vigil_no_such_symbol").has_value());
    EXPECT_EQ(file.symbolAddress("vigil_elf_test_data_marker"),
              file.symbolAddress("vigil_elf_test_data_marker"));
}

TEST(ElfSelf, UndefinedSymbolsAreNotReported) {
    // memcpy is imported from libc: present in .dynsym/.symtab as SHN_UNDEF.
    ElfFile file = ElfFile::open("/proc/self/exe");
    EXPECT_FALSE(file.symbolAddress("memcpy").has_value());
}

TEST(ElfSelf, SegmentsAndSections) {
    ElfFile file = ElfFile::open("/proc/self/exe");
    const std::vector<LoadSegment>& segments = file.loadSegments();
    ASSERT_FALSE(segments.empty());
    bool anyExecutable = false;
    bool anyWritable = false;
    for (const LoadSegment& segment : segments) {
        EXPECT_LE(segment.fileSize, segment.memSize);
        anyExecutable |= segment.executable;
        anyWritable |= segment.writable;
    }
    EXPECT_TRUE(anyExecutable);
    EXPECT_TRUE(anyWritable);
    std::optional<Section> data = file.section(".data");
    ASSERT_TRUE(data.has_value());
    uint64_t marker = *file.symbolAddress("vigil_elf_test_data_marker");
    EXPECT_LE(data->address, marker);
    EXPECT_LT(marker, data->address + data->size);
    EXPECT_FALSE(file.section(".no_such_section").has_value());
}

// The build ID note is also mapped into memory (PT_NOTE): read it there,
// independently of ElfFile, and compare.
std::string buildIdFromMemory() {
    std::string hex;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* out) {
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& header = info->dlpi_phdr[i];
                if (header.p_type != PT_NOTE) continue;
                auto* cursor =
                    reinterpret_cast<const unsigned char*>(info->dlpi_addr + header.p_vaddr);
                const unsigned char* end = cursor + header.p_memsz;
                while (cursor + sizeof(ElfW(Nhdr)) <= end) {
                    auto* note = reinterpret_cast<const ElfW(Nhdr)*>(cursor);
                    const unsigned char* name = cursor + sizeof(ElfW(Nhdr));
                    const unsigned char* desc = name + ((note->n_namesz + 3) & ~3u);
                    if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
                        std::memcmp(name, "GNU", 4) == 0) {
                        char digits[3];
                        for (unsigned j = 0; j < note->n_descsz; ++j) {
                            std::snprintf(digits, sizeof digits, "%02x", desc[j]);
                            *static_cast<std::string*>(out) += digits;
                        }
                        return 1;
                    }
                    cursor = desc + ((note->n_descsz + 3) & ~3u);
                }
            }
            return 1;  // the first object is the executable; stop after it
        },
        &hex);
    return hex;
}

TEST(ElfSelf, BuildIdMatchesTheMappedNote) {
    std::string expected = buildIdFromMemory();
    if (expected.empty()) GTEST_SKIP() << "test binary was linked without --build-id";
    EXPECT_EQ(ElfFile::open("/proc/self/exe").buildId(), expected);
}

TEST(ElfSelf, MovedFileStillWorks) {
    ElfFile original = ElfFile::open("/proc/self/exe");
    std::optional<uint64_t> expected = original.symbolAddress("vigil_elf_test_data_marker");
    ElfFile moved(std::move(original));
    EXPECT_EQ(moved.symbolAddress("vigil_elf_test_data_marker"), expected);
    ElfFile assigned = ElfFile::open("/proc/self/exe");
    assigned = std::move(moved);
    EXPECT_EQ(assigned.symbolAddress("vigil_elf_test_data_marker"), expected);
    EXPECT_EQ(assigned.path(), "/proc/self/exe");
}

// loadBias on hand-written segments, taken from /usr/bin/python3.11
// (non-PIE) and a PIE libpython3.12.
TEST(LoadBias, NonPieExecutableHasZeroBias) {
    std::vector<LoadSegment> segments = {
        {0x400000, 0x0, 0x1e3e8, 0x1e3e8, false, false},
        {0x41f000, 0x1f000, 0x2b2289, 0x2b2289, false, true},
        {0x6d2000, 0x2d2000, 0x272968, 0x272968, false, false},
        {0x945dc8, 0x544dc8, 0x13e4b0, 0x1832f0, true, false},
    };
    EXPECT_EQ(loadBias(segments, 0x400000, 0x0), 0u);
    EXPECT_EQ(loadBias(segments, 0x41f000, 0x1f000), 0u);
    // Page 0x544000 holds the end of the read-only segment and the start of
    // the writable one; a mapping starting there is the writable segment.
    EXPECT_EQ(loadBias(segments, 0x945000, 0x544000), 0u);
    // The part of the writable segment after RELRO, mapped separately.
    EXPECT_EQ(loadBias(segments, 0x96b000, 0x56a000), 0u);
}

TEST(LoadBias, PieUsesTheSegmentOfTheMappedOffset) {
    std::vector<LoadSegment> segments = {
        {0x0, 0x0, 0x105130, 0x105130, false, false},
        {0x106000, 0x106000, 0x272ec9, 0x272ec9, false, true},
        {0x4cd6d0, 0x4cc6d0, 0x1e6118, 0x1e7598, true, false},
    };
    const uint64_t base = 0x7f1234500000;
    EXPECT_EQ(loadBias(segments, base, 0x0), base);
    EXPECT_EQ(loadBias(segments, base + 0x106000, 0x106000), base);
    // vaddr and offset of the writable segment differ by a page.
    EXPECT_EQ(loadBias(segments, base + 0x4cd000, 0x4cc000), base);
    EXPECT_EQ(loadBias(segments, base + 0x600000, 0x5ff000), base);
}

TEST(LoadBias, OffsetOutsideEverySegmentThrows) {
    std::vector<LoadSegment> segments = {{0x0, 0x0, 0x1000, 0x1000, false, true}};
    EXPECT_THROW(loadBias(segments, 0x10000, 0x5000), BadFileError);
    EXPECT_THROW(loadBias({}, 0x10000, 0x0), BadFileError);
}

std::vector<std::string> globPaths(const std::string& pattern) {
    glob_t matches{};
    std::vector<std::string> paths;
    if (glob(pattern.c_str(), 0, nullptr, &matches) == 0) {
        paths.assign(matches.gl_pathv, matches.gl_pathv + matches.gl_pathc);
    }
    globfree(&matches);
    return paths;
}

// Every libpython 3.10+ has a .PyRuntime section holding exactly _PyRuntime.
TEST(ElfLibpython, PyRuntimeSymbolIsTheStartOfItsSection) {
    std::vector<std::string> libraries =
        globPaths("/root/.pyenv/versions/3.1[0-9]*/lib/libpython3.*.so.1.0");
    if (libraries.empty()) GTEST_SKIP() << "no libpython 3.10+ under /root/.pyenv";
    for (const std::string& path : libraries) {
        SCOPED_TRACE(path);
        ElfFile file = ElfFile::open(path);
        EXPECT_TRUE(file.isSharedObject());
        EXPECT_EQ(file.type(), ET_DYN);
        std::optional<uint64_t> runtime = file.symbolAddress("_PyRuntime");
        ASSERT_TRUE(runtime.has_value());
        std::optional<Section> section = file.section(".PyRuntime");
        ASSERT_TRUE(section.has_value());
        EXPECT_EQ(section->address, *runtime);
        EXPECT_GT(section->size, 0u);
    }
}

// A stripped, non-PIE executable: symbols only in .dynsym, no load bias.
TEST(ElfSystemPython, StrippedExecutableResolvesFromDynsym) {
    const std::string path = "/usr/bin/python3.11";
    if (!fs::exists(path)) GTEST_SKIP() << path << " not installed";
    ElfFile file = ElfFile::open(path);
    EXPECT_FALSE(file.section(".symtab").has_value());
    EXPECT_TRUE(file.section(".dynsym").has_value());
    std::optional<uint64_t> runtime = file.symbolAddress("_PyRuntime");
    ASSERT_TRUE(runtime.has_value());
    std::optional<Section> section = file.section(".PyRuntime");
    ASSERT_TRUE(section.has_value());
    EXPECT_EQ(section->address, *runtime);
    if (file.type() == ET_EXEC) {
        EXPECT_FALSE(file.isSharedObject());
        const LoadSegment& first = file.loadSegments().front();
        EXPECT_EQ(loadBias(file.loadSegments(), first.vaddr & ~0xfffull, 0), 0u);
    }
}

class ElfCorrupt : public ::testing::Test {
  protected:
    void SetUp() override {
        directory_ = fs::temp_directory_path() / ("vigil_test_elf_" + std::to_string(getpid()));
        fs::create_directories(directory_);
    }
    void TearDown() override { fs::remove_all(directory_); }

    std::string writeFile(const std::string& name, const std::string& bytes) {
        std::string path = (directory_ / name).string();
        std::ofstream(path, std::ios::binary) << bytes;
        return path;
    }

    static std::string selfBytes() {
        std::ifstream in("/proc/self/exe", std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    // The error is a BadFileError whose one-line message names the file and
    // contains `problem`.
    static void expectBadFile(const std::string& path, const std::string& problem) {
        try {
            ElfFile::open(path);
            ADD_FAILURE() << "opening " << path << " did not throw";
        } catch (const BadFileError& error) {
            std::string message = error.what();
            EXPECT_NE(message.find(path), std::string::npos) << message;
            EXPECT_NE(message.find(problem), std::string::npos) << message;
            EXPECT_EQ(message.find('\n'), std::string::npos) << message;
            EXPECT_EQ(error.code(), ExitCode::kBadFile);
        }
    }

    fs::path directory_;
};

TEST_F(ElfCorrupt, EmptyFile) {
    expectBadFile(writeFile("empty", ""), "empty file");
}

TEST_F(ElfCorrupt, RandomBytes) {
    std::mt19937 generator(1234);
    std::string bytes(8192, '\0');
    for (char& byte : bytes) byte = static_cast<char>(generator());
    expectBadFile(writeFile("random", bytes), "not an ELF file");
}

TEST_F(ElfCorrupt, ShorterThanTheElfHeader) {
    expectBadFile(writeFile("first40", selfBytes().substr(0, 40)), "ELF");
}

TEST_F(ElfCorrupt, TruncatedTo100Bytes) {
    expectBadFile(writeFile("first100", selfBytes().substr(0, 100)),
                  "truncated or corrupt ELF file");
}

TEST_F(ElfCorrupt, TruncatedTo4KiB) {
    expectBadFile(writeFile("first4k", selfBytes().substr(0, 4096)),
                  "truncated or corrupt ELF file");
}

// Only the section header table at the very end is missing.
TEST_F(ElfCorrupt, MissingTail) {
    std::string bytes = selfBytes();
    expectBadFile(writeFile("notail", bytes.substr(0, bytes.size() - 1024)),
                  "truncated or corrupt ELF file");
}

TEST_F(ElfCorrupt, ThirtyTwoBitElf) {
    std::string bytes = selfBytes();
    bytes[EI_CLASS] = ELFCLASS32;
    expectBadFile(writeFile("elf32", bytes), "32-bit ELF is not supported");
}

TEST_F(ElfCorrupt, NonexistentPath) {
    expectBadFile((directory_ / "does_not_exist").string(), "No such file or directory");
}

TEST_F(ElfCorrupt, Directory) {
    expectBadFile(directory_.string(), "not a regular file");
}

}  // namespace
}  // namespace vigil
