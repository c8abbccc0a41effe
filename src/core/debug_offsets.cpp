#include "core/debug_offsets.h"

#include <cstring>

#include <fmt/format.h>

namespace vigil {
namespace {

// No interpreter structure is anywhere near this large; a larger size means
// we are not looking at _Py_DebugOffsets.
constexpr uint64_t kMaxStructSize = 1 << 24;

bool within(uint64_t offset, uint64_t size) {
    return offset < size;
}

bool plausible(const DebugOffsets313& d, std::string& why) {
    struct Check {
        const char* what;
        uint64_t offset;
        uint64_t size;
    };
    const Check checks[] = {
        {"runtime_state.interpreters_head", d.runtime_state.interpreters_head,
         d.runtime_state.size},
        {"interpreter_state.threads_head", d.interpreter_state.threads_head,
         d.interpreter_state.size},
        {"interpreter_state.next", d.interpreter_state.next, d.interpreter_state.size},
        {"thread_state.next", d.thread_state.next, d.thread_state.size},
        {"thread_state.current_frame", d.thread_state.current_frame, d.thread_state.size},
        {"thread_state.thread_id", d.thread_state.thread_id, d.thread_state.size},
        {"interpreter_frame.previous", d.interpreter_frame.previous, d.interpreter_frame.size},
        {"interpreter_frame.executable", d.interpreter_frame.executable, d.interpreter_frame.size},
        {"code_object.filename", d.code_object.filename, d.code_object.size},
        {"code_object.linetable", d.code_object.linetable, d.code_object.size},
    };
    for (const Check& check : checks) {
        if (check.size == 0 || check.size > kMaxStructSize || !within(check.offset, check.size)) {
            why = fmt::format("_Py_DebugOffsets.{} = {} is outside its structure of {} bytes",
                              check.what, check.offset, check.size);
            return false;
        }
    }
    return true;
}

}  // namespace

PyVersion versionFromHex(uint64_t hex) {
    return PyVersion{static_cast<int>((hex >> 24) & 0xff), static_cast<int>((hex >> 16) & 0xff),
                     static_cast<int>((hex >> 8) & 0xff)};
}

bool readDebugOffsets(MemorySource& memory, uint64_t runtimeAddress, DebugOffsets313& out,
                      std::string& why) {
    if (!memory.readValue(runtimeAddress, out)) {
        why = fmt::format("cannot read _Py_DebugOffsets at {:#x}", runtimeAddress);
        return false;
    }
    if (std::memcmp(out.cookie, kDebugCookie, sizeof(out.cookie)) != 0) {
        why = "no _Py_DebugOffsets cookie at the start of _PyRuntime";
        return false;
    }
    PyVersion version = versionFromHex(out.version);
    if (!version.atLeast(3, 13) || version.major != 3) {
        why =
            fmt::format("_Py_DebugOffsets names version {}, expected 3.13 or later", version.str());
        return false;
    }
    if (out.free_threaded) {
        why = "free-threaded (no-GIL) builds are not supported yet";
        return false;
    }
    return plausible(out, why);
}

void applyDebugOffsets(const DebugOffsets313& d, PyLayout& layout) {
    auto off = [](uint64_t value) { return static_cast<Offset>(value); };
    layout.version = versionFromHex(d.version);
    layout.runtime.interpreters_head = off(d.runtime_state.interpreters_head);

    layout.interp.next = off(d.interpreter_state.next);
    layout.interp.threads_head = off(d.interpreter_state.threads_head);
    layout.interp.modules = off(d.interpreter_state.imports_modules);
    layout.interp.ceval_gil = off(d.interpreter_state.ceval_gil);
    // The debug offsets of the GIL fields are relative to the interpreter's own
    // embedded _gil; we read through the ceval.gil pointer, so rebase them.
    layout.interp.gil_locked =
        off(d.interpreter_state.gil_runtime_state_locked - d.interpreter_state.gil_runtime_state);
    layout.interp.gil_last_holder =
        off(d.interpreter_state.gil_runtime_state_holder - d.interpreter_state.gil_runtime_state);

    layout.thread.size = off(d.thread_state.size);
    layout.thread.prev = off(d.thread_state.prev);
    layout.thread.next = off(d.thread_state.next);
    layout.thread.interp = off(d.thread_state.interp);
    layout.thread.frame = off(d.thread_state.current_frame);
    layout.thread.thread_id = off(d.thread_state.thread_id);
    layout.thread.native_thread_id = off(d.thread_state.native_thread_id);
    layout.thread.datastack_chunk = off(d.thread_state.datastack_chunk);

    layout.frame.previous = off(d.interpreter_frame.previous);
    layout.frame.code = off(d.interpreter_frame.executable);
    layout.frame.instr_ptr = off(d.interpreter_frame.instr_ptr);
    layout.frame.localsplus = off(d.interpreter_frame.localsplus);
    layout.frame.owner = off(d.interpreter_frame.owner);

    layout.code.size = off(d.code_object.size);
    layout.code.filename = off(d.code_object.filename);
    layout.code.name = off(d.code_object.name);
    layout.code.qualname = off(d.code_object.qualname);
    layout.code.linetable = off(d.code_object.linetable);
    layout.code.firstlineno = off(d.code_object.firstlineno);
    layout.code.argcount = off(d.code_object.argcount);
    layout.code.localsplusnames = off(d.code_object.localsplusnames);
    layout.code.localspluskinds = off(d.code_object.localspluskinds);
    layout.code.code_adaptive = off(d.code_object.co_code_adaptive);

    layout.object.ob_type = off(d.pyobject.ob_type);
    layout.type.tp_name = off(d.type_object.tp_name);
    layout.type.tp_flags = off(d.type_object.tp_flags);
    layout.tuple.ob_item = off(d.tuple_object.ob_item);
    layout.object.ob_size = off(d.tuple_object.ob_size);
    layout.list.ob_item = off(d.list_object.ob_item);
    layout.dict.ma_keys = off(d.dict_object.ma_keys);
    layout.dict.ma_values = off(d.dict_object.ma_values);
    layout.float_.ob_fval = off(d.float_object.ob_fval);
    layout.long_.lv_tag = off(d.long_object.lv_tag);
    layout.long_.ob_digit = off(d.long_object.ob_digit);
    layout.bytes.ob_sval = off(d.bytes_object.ob_sval);
    layout.unicode.state = off(d.unicode_object.state);
    layout.unicode.length = off(d.unicode_object.length);
    layout.unicode.ascii_size = off(d.unicode_object.asciiobject_size);
}

}  // namespace vigil
