// Reading objects from a fake process: strings, rendering, and bounds.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/debug_offsets.h"
#include "core/objects.h"
#include "fake_process.h"

namespace vigil {
namespace {

TEST(Objects, ReadsCompactAsciiStrings) {
    testing::FakeProcess fake(*generatedLayout(3, 12));
    BufferMemory memory = fake.memory();
    ObjectReader objects(memory, fake.layout());
    uint64_t text = fake.str("hello");
    EXPECT_EQ(objects.readStr(text), "hello");
    bool truncated = false;
    EXPECT_EQ(objects.readStr(text, 3, &truncated), "hel");
    EXPECT_TRUE(truncated);
    EXPECT_EQ(objects.kindOf(text), TypeKind::kStr);
    EXPECT_EQ(objects.render(text), "'hello'");
}

TEST(Objects, GarbageLengthIsRefused) {
    testing::FakeProcess fake(*generatedLayout(3, 12));
    BufferMemory memory = fake.memory();
    ObjectReader objects(memory, fake.layout());
    uint64_t text = fake.str("x");
    fake.put(text + fake.layout().unicode.length, int64_t{-5});
    EXPECT_FALSE(objects.readStr(text));
    fake.put(text + fake.layout().unicode.length, int64_t{1} << 50);
    EXPECT_FALSE(objects.readStr(text));
}

TEST(Objects, UnreadableObjectsRenderOpaquely) {
    testing::FakeProcess fake(*generatedLayout(3, 12));
    BufferMemory memory = fake.memory();
    ObjectReader objects(memory, fake.layout());
    EXPECT_EQ(objects.render(0), "<unset>");
    EXPECT_EQ(objects.render(0xdead0000), "<? at 0xdead0000>");
    uint64_t custom = fake.allocate(64);
    fake.put(custom + fake.layout().object.ob_type, fake.type("Custom"));
    EXPECT_EQ(objects.render(custom), fmt::format("<Custom at {:#x}>", custom));
}

TEST(Objects, QuoteEscapesControlCharacters) {
    EXPECT_EQ(quoteForDisplay("a'b\n\x01"), "'a\\'b\\n\\x01'");
}

// _Py_DebugOffsets as a 3.13 target publishes them, built from the generated
// 3.13 table: reading and applying them must give that table back.
DebugOffsets313 offsetsFrom(const PyLayout& l) {
    DebugOffsets313 d{};
    std::memcpy(d.cookie, kDebugCookie, 8);
    d.version = 0x030D00F0;
    d.runtime_state = {100000, 0, uint64_t(l.runtime.interpreters_head)};
    d.interpreter_state.size = 100000;
    d.interpreter_state.next = l.interp.next;
    d.interpreter_state.threads_head = l.interp.threads_head;
    d.interpreter_state.imports_modules = l.interp.modules;
    d.interpreter_state.ceval_gil = l.interp.ceval_gil;
    d.interpreter_state.gil_runtime_state = 5000;
    d.interpreter_state.gil_runtime_state_locked = 5000 + l.interp.gil_locked;
    d.interpreter_state.gil_runtime_state_holder = 5000 + l.interp.gil_last_holder;
    d.thread_state = {uint64_t(l.thread.size),
                      uint64_t(l.thread.prev),
                      uint64_t(l.thread.next),
                      uint64_t(l.thread.interp),
                      uint64_t(l.thread.frame),
                      uint64_t(l.thread.thread_id),
                      uint64_t(l.thread.native_thread_id),
                      uint64_t(l.thread.datastack_chunk),
                      0};
    d.interpreter_frame = {80,
                           uint64_t(l.frame.previous),
                           uint64_t(l.frame.code),
                           uint64_t(l.frame.instr_ptr),
                           uint64_t(l.frame.localsplus),
                           uint64_t(l.frame.owner)};
    d.code_object = {uint64_t(l.code.size),
                     uint64_t(l.code.filename),
                     uint64_t(l.code.name),
                     uint64_t(l.code.qualname),
                     uint64_t(l.code.linetable),
                     uint64_t(l.code.firstlineno),
                     uint64_t(l.code.argcount),
                     uint64_t(l.code.localsplusnames),
                     uint64_t(l.code.localspluskinds),
                     uint64_t(l.code.code_adaptive)};
    return d;
}

// Publishes offsets at an address of a fake target and reads them back.
bool readPublished(const DebugOffsets313& published, DebugOffsets313& read, std::string& why) {
    std::vector<uint8_t> buffer(sizeof(published));
    std::memcpy(buffer.data(), &published, sizeof(published));
    BufferMemory memory(0x5000, buffer);
    return readDebugOffsets(memory, 0x5000, read, why);
}

TEST(DebugOffsets, RoundTripThroughTheGeneratedTable) {
    PyLayout table = *generatedLayout(3, 13);
    DebugOffsets313 read{};
    std::string why;
    ASSERT_TRUE(readPublished(offsetsFrom(table), read, why)) << why;
    PyLayout applied = table;
    applyDebugOffsets(read, applied);
    EXPECT_EQ(applied.version.str(), "3.13.0");
    EXPECT_EQ(applied.thread.frame, table.thread.frame);
    EXPECT_EQ(applied.frame.instr_ptr, table.frame.instr_ptr);
    EXPECT_EQ(applied.interp.gil_locked, table.interp.gil_locked);
    EXPECT_EQ(applied.code.code_adaptive, table.code.code_adaptive);
}

TEST(DebugOffsets, RefusesAWrongCookieAVersionOrAnImplausibleOffset) {
    PyLayout table = *generatedLayout(3, 13);
    std::string why;
    DebugOffsets313 read{};
    auto check = [&](const DebugOffsets313& published) {
        return readPublished(published, read, why);
    };
    DebugOffsets313 badCookie = offsetsFrom(table);
    badCookie.cookie[0] = 'y';
    EXPECT_FALSE(check(badCookie));
    EXPECT_NE(why.find("cookie"), std::string::npos);
    DebugOffsets313 oldVersion = offsetsFrom(table);
    oldVersion.version = 0x030C00F0;
    EXPECT_FALSE(check(oldVersion));
    DebugOffsets313 outside = offsetsFrom(table);
    outside.thread_state.current_frame = outside.thread_state.size + 8;
    EXPECT_FALSE(check(outside));
    EXPECT_NE(why.find("thread_state.current_frame"), std::string::npos);
    DebugOffsets313 freeThreaded = offsetsFrom(table);
    freeThreaded.free_threaded = 1;
    EXPECT_FALSE(check(freeThreaded));
}

}  // namespace
}  // namespace vigil
