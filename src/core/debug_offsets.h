// CPython 3.13+ publishes the offsets of its own structures at the start of
// _PyRuntime (_Py_DebugOffsets, Include/internal/pycore_runtime.h), so a
// debugger reads a new version without new tables. This reads and validates
// them and lays them over a generated table.
#pragma once

#include <cstdint>
#include <string>

#include "core/layout.h"
#include "core/memory.h"

namespace vigil {

// The 3.13 shape of _Py_DebugOffsets, from
// https://github.com/python/cpython/blob/v3.13.0/Include/internal/pycore_runtime.h
struct DebugOffsets313 {
    char cookie[8];
    uint64_t version;
    uint64_t free_threaded;
    struct {
        uint64_t size, finalizing, interpreters_head;
    } runtime_state;
    struct {
        uint64_t size, id, next, threads_head, gc, imports_modules, sysdict, builtins, ceval_gil,
            gil_runtime_state, gil_runtime_state_enabled, gil_runtime_state_locked,
            gil_runtime_state_holder;
    } interpreter_state;
    struct {
        uint64_t size, prev, next, interp, current_frame, thread_id, native_thread_id,
            datastack_chunk, status;
    } thread_state;
    struct {
        uint64_t size, previous, executable, instr_ptr, localsplus, owner;
    } interpreter_frame;
    struct {
        uint64_t size, filename, name, qualname, linetable, firstlineno, argcount, localsplusnames,
            localspluskinds, co_code_adaptive;
    } code_object;
    struct {
        uint64_t size, ob_type;
    } pyobject;
    struct {
        uint64_t size, tp_name, tp_repr, tp_flags;
    } type_object;
    struct {
        uint64_t size, ob_item, ob_size;
    } tuple_object, list_object;
    struct {
        uint64_t size, ma_keys, ma_values;
    } dict_object;
    struct {
        uint64_t size, ob_fval;
    } float_object;
    struct {
        uint64_t size, lv_tag, ob_digit;
    } long_object;
    struct {
        uint64_t size, ob_size, ob_sval;
    } bytes_object;
    struct {
        uint64_t size, state, length, asciiobject_size;
    } unicode_object;
    struct {
        uint64_t size, collecting;
    } gc;
};

inline constexpr char kDebugCookie[] = "xdebugpy";

// Decodes PY_VERSION_HEX.
PyVersion versionFromHex(uint64_t hex);

// Reads _Py_DebugOffsets at runtimeAddress. Returns false (with why set)
// when the cookie is missing or a value is implausible.
bool readDebugOffsets(MemorySource& memory, uint64_t runtimeAddress, DebugOffsets313& out,
                      std::string& why);

// Overrides the fields of layout that the debug offsets describe.
void applyDebugOffsets(const DebugOffsets313& offsets, PyLayout& layout);

}  // namespace vigil
