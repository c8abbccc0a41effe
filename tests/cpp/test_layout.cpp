// The generated per-version offset tables and their lookup.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/layout.h"

namespace vigil {
namespace {

using Fields = std::vector<std::pair<std::string, Offset>>;

// Every Offset of a layout with its name, in declaration order.
Fields fieldsOf(const PyLayout& l) {
#define VIGIL_F(group, field) \
    { #group "." #field, l.group.field }
    return {
        VIGIL_F(runtime, interpreters_head),
        VIGIL_F(runtime, gil_locked),
        VIGIL_F(runtime, gil_last_holder),
        VIGIL_F(interp, next),
        VIGIL_F(interp, threads_head),
        VIGIL_F(interp, modules),
        VIGIL_F(interp, ceval_gil),
        VIGIL_F(interp, gil_locked),
        VIGIL_F(interp, gil_last_holder),
        VIGIL_F(thread, size),
        VIGIL_F(thread, prev),
        VIGIL_F(thread, next),
        VIGIL_F(thread, interp),
        VIGIL_F(thread, frame),
        VIGIL_F(thread, cframe),
        VIGIL_F(thread, cframe_current_frame),
        VIGIL_F(thread, thread_id),
        VIGIL_F(thread, native_thread_id),
        VIGIL_F(thread, datastack_chunk),
        VIGIL_F(thread, datastack_top),
        VIGIL_F(chunk, previous),
        VIGIL_F(chunk, size),
        VIGIL_F(chunk, top),
        VIGIL_F(chunk, data),
        VIGIL_F(frame, size),
        VIGIL_F(frame, previous),
        VIGIL_F(frame, code),
        VIGIL_F(frame, lasti),
        VIGIL_F(frame, instr_ptr),
        VIGIL_F(frame, localsplus),
        VIGIL_F(frame, owner),
        VIGIL_F(frame, is_entry),
        VIGIL_F(code, size),
        VIGIL_F(code, argcount),
        VIGIL_F(code, nlocals),
        VIGIL_F(code, flags),
        VIGIL_F(code, firstlineno),
        VIGIL_F(code, code),
        VIGIL_F(code, code_adaptive),
        VIGIL_F(code, varnames),
        VIGIL_F(code, cellvars),
        VIGIL_F(code, freevars),
        VIGIL_F(code, localsplusnames),
        VIGIL_F(code, localspluskinds),
        VIGIL_F(code, filename),
        VIGIL_F(code, name),
        VIGIL_F(code, qualname),
        VIGIL_F(code, linetable),
        VIGIL_F(object, ob_type),
        VIGIL_F(object, ob_size),
        VIGIL_F(type, tp_name),
        VIGIL_F(type, tp_basicsize),
        VIGIL_F(type, tp_dictoffset),
        VIGIL_F(type, tp_flags),
        VIGIL_F(type, ht_cached_keys),
        VIGIL_F(unicode, state),
        VIGIL_F(unicode, length),
        VIGIL_F(unicode, ascii_size),
        VIGIL_F(unicode, compact_size),
        VIGIL_F(bytes, ob_sval),
        VIGIL_F(tuple, ob_item),
        VIGIL_F(list, ob_item),
        VIGIL_F(long_, lv_tag),
        VIGIL_F(long_, ob_digit),
        VIGIL_F(float_, ob_fval),
        VIGIL_F(dict, ma_used),
        VIGIL_F(dict, ma_keys),
        VIGIL_F(dict, ma_values),
        VIGIL_F(dict, dk_size),
        VIGIL_F(dict, dk_log2_size),
        VIGIL_F(dict, dk_log2_index_bytes),
        VIGIL_F(dict, dk_kind),
        VIGIL_F(dict, dk_nentries),
        VIGIL_F(dict, dk_indices),
        VIGIL_F(dict, values_values),
        VIGIL_F(cell, ob_ref),
        VIGIL_F(module, md_dict),
    };
#undef VIGIL_F
}

// The 3.x minors in which a field exists, [first, last]; fields not listed
// exist in every version. Written from CPython's history, independently of
// the generator.
const std::map<std::string, std::pair<int, int>>& versionedFields() {
    static const std::map<std::string, std::pair<int, int>> kRanges = {
        {"runtime.gil_locked", {8, 11}},
        {"runtime.gil_last_holder", {8, 11}},
        {"interp.ceval_gil", {12, 99}},
        {"interp.gil_locked", {12, 99}},
        {"interp.gil_last_holder", {12, 99}},
        {"thread.frame", {8, 10}},  // and 3.13+ (current_frame), see below
        {"thread.cframe", {11, 12}},
        {"thread.cframe_current_frame", {11, 12}},
        {"thread.native_thread_id", {11, 99}},
        {"thread.datastack_chunk", {11, 99}},
        {"thread.datastack_top", {11, 99}},
        {"chunk.previous", {11, 99}},
        {"chunk.size", {11, 99}},
        {"chunk.top", {11, 99}},
        {"chunk.data", {11, 99}},
        {"frame.lasti", {8, 10}},
        {"frame.instr_ptr", {11, 99}},
        {"frame.owner", {11, 99}},
        {"frame.is_entry", {11, 11}},
        {"code.code", {8, 10}},
        {"code.code_adaptive", {11, 99}},
        {"code.varnames", {8, 10}},
        {"code.cellvars", {8, 10}},
        {"code.freevars", {8, 10}},
        {"code.localsplusnames", {11, 99}},
        {"code.localspluskinds", {11, 99}},
        {"code.qualname", {11, 99}},
        {"long_.lv_tag", {12, 99}},
        {"dict.dk_size", {8, 10}},
        {"dict.dk_log2_size", {11, 99}},
        {"dict.dk_log2_index_bytes", {11, 99}},
        {"dict.dk_kind", {11, 99}},
        {"dict.values_values", {11, 99}},
    };
    return kRanges;
}

bool mustHave(const std::string& field, int minor) {
    if (field == "thread.frame" && minor >= 13) return true;
    auto it = versionedFields().find(field);
    if (it == versionedFields().end()) return true;
    return it->second.first <= minor && minor <= it->second.second;
}

PyLayout tableFor(int minor) {
    auto layout = generatedLayout(3, minor);
    EXPECT_TRUE(layout.has_value()) << "3." << minor;
    return layout.value_or(PyLayout{});
}

class EveryTable : public ::testing::TestWithParam<int> {};

INSTANTIATE_TEST_SUITE_P(Layouts, EveryTable, ::testing::Range(8, 14),
                         [](const ::testing::TestParamInfo<int>& info) {
                             return "Py3_" + std::to_string(info.param);
                         });

TEST_P(EveryTable, IsTheExactMinor) {
    const PyLayout l = tableFor(GetParam());
    EXPECT_EQ(l.version.major, 3);
    EXPECT_EQ(l.version.minor, GetParam());
    EXPECT_EQ(l.version.micro, 0);
}

TEST_P(EveryTable, HasExactlyTheFieldsOfItsVersion) {
    const int minor = GetParam();
    const PyLayout l = tableFor(minor);
    for (const auto& [name, value] : fieldsOf(l)) {
        if (mustHave(name, minor)) {
            EXPECT_NE(value, kNone) << "3." << minor << " must have " << name;
        } else {
            EXPECT_EQ(value, kNone) << "3." << minor << " has no " << name;
        }
    }
}

TEST_P(EveryTable, OffsetsAreInRange) {
    const PyLayout l = tableFor(GetParam());
    for (const auto& [name, value] : fieldsOf(l)) {
        if (value == kNone) continue;
        EXPECT_GE(value, 0) << name;
        EXPECT_LT(value, 1 << 16) << name;
    }
}

TEST_P(EveryTable, ObjectHeadersAreTheStandardOnes) {
    const PyLayout l = tableFor(GetParam());
    EXPECT_EQ(l.object.ob_type, 8);
    EXPECT_EQ(l.object.ob_size, 16);
    EXPECT_EQ(l.tuple.ob_item, 24);
    EXPECT_EQ(l.list.ob_item, 24);
    EXPECT_EQ(l.float_.ob_fval, 16);
    EXPECT_EQ(l.cell.ob_ref, 16);
    EXPECT_EQ(l.module.md_dict, 16);
    EXPECT_GT(l.bytes.ob_sval, l.object.ob_size);
    EXPECT_GT(l.long_.ob_digit, l.object.ob_type);
    if (l.long_.lv_tag != kNone) {
        EXPECT_LT(l.long_.lv_tag, l.long_.ob_digit);
    }
}

TEST_P(EveryTable, ThreadStateIsOrdered) {
    const PyLayout l = tableFor(GetParam());
    const auto& t = l.thread;
    EXPECT_EQ(t.prev, 0);
    EXPECT_LT(t.prev, t.next);
    EXPECT_LT(t.next, t.interp);
    EXPECT_LT(t.thread_id, t.size);
    if (t.frame != kNone) {
        EXPECT_GT(t.frame, t.interp);
        EXPECT_LT(t.frame, t.size);
    }
    if (t.cframe != kNone) {
        EXPECT_LT(t.cframe, t.size);
    }
    if (t.native_thread_id != kNone) {
        EXPECT_EQ(t.native_thread_id, t.thread_id + 8);
        EXPECT_LT(t.native_thread_id, t.datastack_chunk);
        EXPECT_LT(t.datastack_chunk, t.datastack_top);
        EXPECT_LT(t.datastack_top, t.size);
    }
    if (l.chunk.previous != kNone) {
        EXPECT_LT(l.chunk.previous, l.chunk.size);
        EXPECT_LT(l.chunk.size, l.chunk.top);
        EXPECT_LT(l.chunk.top, l.chunk.data);
    }
}

TEST_P(EveryTable, FrameIsOrdered) {
    const PyLayout l = tableFor(GetParam());
    const auto& f = l.frame;
    // size is the frame without localsplus, which comes last.
    EXPECT_EQ(f.localsplus, f.size);
    EXPECT_LT(f.previous, f.size);
    EXPECT_LT(f.code, f.size);
    for (Offset o : {f.lasti, f.instr_ptr, f.owner, f.is_entry}) {
        if (o != kNone) {
            EXPECT_LT(o, f.size);
        }
    }
    EXPECT_EQ(f.previous % 8, 0);
    EXPECT_EQ(f.code % 8, 0);
    if (f.instr_ptr != kNone) {
        EXPECT_EQ(f.instr_ptr % 8, 0);
    }
}

TEST_P(EveryTable, CodeIsOrdered) {
    const PyLayout l = tableFor(GetParam());
    const auto& c = l.code;
    for (const auto& [name, value] : fieldsOf(l)) {
        if (name.rfind("code.", 0) != 0 || name == "code.size" || value == kNone) continue;
        EXPECT_LT(value, c.size) << name;
        EXPECT_GE(value, l.object.ob_size) << name;
    }
    EXPECT_LT(c.filename, c.name);
    if (c.qualname != kNone) {
        EXPECT_LT(c.name, c.qualname);
    }
    if (c.code_adaptive != kNone) {
        // The inline bytecode is the last member.
        for (const auto& [name, value] : fieldsOf(l)) {
            if (name.rfind("code.", 0) == 0 && name != "code.size" && value != kNone) {
                EXPECT_LE(value, c.code_adaptive) << name;
            }
        }
    }
}

TEST_P(EveryTable, TypeUnicodeAndDictAreOrdered) {
    const PyLayout l = tableFor(GetParam());
    EXPECT_EQ(l.type.tp_name, 24);
    EXPECT_LT(l.type.tp_name, l.type.tp_basicsize);
    EXPECT_LT(l.type.tp_basicsize, l.type.tp_flags);
    EXPECT_LT(l.type.tp_flags, l.type.tp_dictoffset);
    EXPECT_LT(l.type.tp_dictoffset, l.type.ht_cached_keys);

    EXPECT_LT(l.unicode.length, l.unicode.state);
    EXPECT_LT(l.unicode.state, l.unicode.ascii_size);
    EXPECT_LT(l.unicode.ascii_size, l.unicode.compact_size);

    const auto& d = l.dict;
    EXPECT_LT(d.ma_used, d.ma_keys);
    EXPECT_LT(d.ma_keys, d.ma_values);
    EXPECT_LT(d.dk_nentries, d.dk_indices);
    if (d.dk_size != kNone) {
        EXPECT_LT(d.dk_size, d.dk_nentries);
    }
    if (d.dk_log2_size != kNone) {
        EXPECT_EQ(d.dk_log2_index_bytes, d.dk_log2_size + 1);
        EXPECT_EQ(d.dk_kind, d.dk_log2_size + 2);
        EXPECT_LT(d.dk_kind, d.dk_nentries);
    }
}

TEST_P(EveryTable, GilIsWhereTheVersionKeepsIt) {
    const PyLayout l = tableFor(GetParam());
    if (l.version.atLeast(3, 12)) {
        EXPECT_LT(l.interp.gil_last_holder, l.interp.gil_locked);
    } else {
        EXPECT_LT(l.runtime.interpreters_head, l.runtime.gil_last_holder);
        EXPECT_LT(l.runtime.gil_last_holder, l.runtime.gil_locked);
    }
}

TEST_P(EveryTable, ModelsFollowTheVersion) {
    const PyLayout l = tableFor(GetParam());
    const int minor = GetParam();
    EXPECT_EQ(l.frameModel(),
              minor >= 11 ? FrameModel::kInterpreterFrame : FrameModel::kFrameObject);
    const LineTableFormat expected = minor >= 11   ? LineTableFormat::kLocationTable
                                     : minor == 10 ? LineTableFormat::kLinetable310
                                                   : LineTableFormat::kLnotab;
    EXPECT_EQ(l.lineTableFormat(), expected);
}

TEST(GeneratedLayout, RejectsOlderVersions) {
    EXPECT_FALSE(generatedLayout(3, 7).has_value());
    EXPECT_FALSE(generatedLayout(3, 0).has_value());
    EXPECT_FALSE(generatedLayout(2, 7).has_value());
    EXPECT_FALSE(generatedLayout(4, 0).has_value());
    EXPECT_FALSE(generatedLayout(4, 13).has_value());
}

TEST(GeneratedLayout, NewerMinorGetsTheNewestTableWithItsVersion) {
    auto newest = generatedLayout(3, 13);
    auto future = generatedLayout(3, 14);
    ASSERT_TRUE(newest.has_value());
    ASSERT_TRUE(future.has_value());
    EXPECT_EQ(future->version.major, 3);
    EXPECT_EQ(future->version.minor, 14);
    EXPECT_EQ(future->version.str(), "3.14.0");
    const Fields a = fieldsOf(*newest), b = fieldsOf(*future);
    EXPECT_EQ(a, b);
    EXPECT_EQ(generatedLayout(3, 20)->version.minor, 20);
}

TEST(GeneratedLayout, NewestVersionIs313) {
    const PyVersion v = newestGeneratedVersion();
    EXPECT_EQ(v.major, 3);
    EXPECT_EQ(v.minor, 13);
    EXPECT_EQ(generatedLayout(3, v.minor)->version.minor, v.minor);
}

TEST(GeneratedLayout, TablesDiffer) {
    // A table copied by mistake would pass every per-table test.
    for (int minor = 9; minor <= 13; ++minor) {
        EXPECT_NE(fieldsOf(tableFor(minor - 1)), fieldsOf(tableFor(minor))) << "3." << minor;
    }
}

TEST(PyVersion, Str) {
    EXPECT_EQ((PyVersion{3, 11, 7}).str(), "3.11.7");
    EXPECT_EQ((PyVersion{3, 8, 0}).str(), "3.8.0");
    EXPECT_EQ((PyVersion{3, 13, 12}).str(), "3.13.12");
}

TEST(PyVersion, AtLeast) {
    const PyVersion v{3, 11, 2};
    EXPECT_TRUE(v.atLeast(3, 11));
    EXPECT_TRUE(v.atLeast(3, 8));
    EXPECT_FALSE(v.atLeast(3, 12));
    EXPECT_FALSE(v.atLeast(4, 0));
    EXPECT_TRUE(v.atLeast(2, 99));
}

}  // namespace
}  // namespace vigil
