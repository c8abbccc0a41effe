#!/usr/bin/env python3
"""Generate src/core/layouts_generated.cpp: CPython structure offsets per minor.

Usage:  python3 tools/gen_layouts.py [--output FILE] [--check] [--cc CC]
                                     [--skip 3.X ...] [--no-validate] [-v]

What it does, for every CPython 3.8+ found on this machine:

  1. Discovery. Candidates are pyenv's interpreters
     ($PYENV_ROOT or `pyenv root` or ~/.pyenv)/versions/*/bin/python3.X and
     /usr/bin/python3.X, /usr/local/bin/python3.X; deduplicated by realpath.
     Each one is asked for its version and its include directory
     (sysconfig.get_paths()["include"]). Debug (Py_DEBUG), free-threaded
     (Py_GIL_DISABLED) and 32-bit builds are skipped: the tables describe the
     default 64-bit build, the one vigil reads without _Py_DebugOffsets.

  2. Probe. A C program is written that defines Py_BUILD_CORE, includes
     Python.h and the internal headers of that version, and prints
     offsetof()/sizeof() for every PyLayout field that version has. Where a
     structure is private to a .c file in that version, the probe carries a
     mirror of it with a link to the CPython source it copies. The probe is
     compiled with `cc` against the interpreter's own headers and run.

  3. Validation (unless --no-validate). The interpreter itself is run with a
     small ctypes script that reads its own live objects at the probed offsets
     (its thread states with a second thread parked, a subinterpreter, frames,
     generator frames, code, dicts, strings, the GIL, ...) and checks that they
     hold what they must; for 3.13+ it also compares the table with the
     interpreter's own _Py_DebugOffsets (DEBUG_OFFSETS below). This catches a
     wrong mirror or expression, and headers that do not match the binary.
     Only sizeof-type fields (thread.size, code.size) are not observable.

  4. Patch releases. When several patch releases of one minor are found their
     tables are compared; any difference is an error naming the field (the
     tables are per minor, vigil does not switch on the patch number).

  5. Output. One table per minor, as designated initializers, into
     src/core/layouts_generated.cpp. Every minor in REQUIRED_MINORS must have
     been found; --check compares instead of writing (exit 1 on a difference).

Known patch-release layout changes (research notes, 3.8-3.13; the offsets
vigil uses did not move between final releases of one minor):
  * 3.9.3 changed PyThreadState: the `int recursion_depth; char overflowed;
    char recursion_critical; int stackcheck_counter;` run after `frame`
    became `int, int, char, int` (bpo-43710; discussed in
    python/cpython#25160). 3.9.4 was the expedited release that restored the
    old layout (3.9.18's header has it). On LP64 the 4 extra bytes were
    absorbed by the padding before c_profilefunc, so even 3.9.3 kept
    prev/next/interp/frame/thread_id where every other 3.9.x has them.
  * 3.10.0rc2 appended `int use_tracing` to PyThreadState (bpo-43760,
    python/cpython#28498): sizeof changed after rc1, no offset moved; all 3.10
    final releases have it.
  * 3.13.1 appended PyInterpreterState.threads_preallocated at the end of the
    struct (python/cpython#127114) and grew _Py_global_strings
    (python/cpython#128341), which shifts everything in _PyRuntimeState after
    the global objects (including the embedded main interpreter's address) but
    not interpreters.head or any PyInterpreterState field we use. 3.13.2 added
    PyConfig.use_system_logger on Apple platforms only (python/cpython#130940);
    PyConfig sits after `imports` in PyInterpreterState.
  * Outside our tables: 3.14.x patch releases did move PyInterpreterState
    fields (guppy3#53 for 3.14.5; py-spy#861 reports imports.modules at 7688
    in 3.14.6 vs 7664 in 3.14.0). Hence 3.13+ targets must prefer
    _Py_DebugOffsets, and a table reused for a newer minor is only a base.
  * Before our range, 3.7.x patch releases moved _PyRuntime.gilstate
    .tstate_current (austin#25); vigil does not read that field.
On this machine 3.11.2 (Debian) and 3.11.7 (pyenv) produce identical tables.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT_H = os.path.join(REPO, "src", "core", "layout.h")
DEFAULT_OUTPUT = os.path.join(REPO, "src", "core", "layouts_generated.cpp")

# Minors the committed file must contain; the generator fails if one is missing.
REQUIRED_MINORS = (8, 9, 10, 11, 12, 13)
# The newest minor these field expressions were written against. A newer
# interpreter is still probed, but a failure then means "teach me 3.X".
NEWEST_KNOWN_MINOR = 13

# ---------------------------------------------------------------------------
# Field expressions.
#
# FIELDS maps every PyLayout field ("group.field") to a list of
# (first_minor, C expression or None). The entry with the greatest
# first_minor <= the probed minor applies; None means the version has no such
# field (kNone).
# ---------------------------------------------------------------------------


def off(struct, member):
    return "offsetof(%s, %s)" % (struct, member)


TS = "PyThreadState"
IS = "PyInterpreterState"
RT = "_PyRuntimeState"
IF = "_PyInterpreterFrame"
FO = "PyFrameObject"
CO = "PyCodeObject"
DK = "PyDictKeysObject"
GIL = "struct _gil_runtime_state"

def status_bit(member):
    """The bit of PyThreadState._status.<member> in its first 32-bit word."""
    return (
        "({ PyThreadState s; memset(&s, 0, sizeof s); s._status.%s = 1; "
        "unsigned int word; memcpy(&word, &s._status, sizeof word); __builtin_ctz(word); })" % member
    )


FIELDS = {
    # _PyRuntimeState
    "runtime.interpreters_head": [(8, off(RT, "interpreters.head"))],
    "runtime.gil_locked": [(8, off(RT, "ceval.gil.locked")), (12, None)],
    "runtime.gil_last_holder": [(8, off(RT, "ceval.gil.last_holder")), (12, None)],
    # PyInterpreterState
    "interp.next": [(8, off(IS, "next"))],
    "interp.threads_head": [(8, off(IS, "tstate_head")), (11, off(IS, "threads.head"))],
    "interp.modules": [(8, off(IS, "modules")), (12, off(IS, "imports.modules"))],
    "interp.ceval_gil": [(8, None), (12, off(IS, "ceval.gil"))],
    "interp.gil_locked": [(8, None), (12, off(GIL, "locked"))],
    "interp.gil_last_holder": [(8, None), (12, off(GIL, "last_holder"))],
    # PyThreadState
    "thread.size": [(8, "sizeof(PyThreadState)")],
    "thread.prev": [(8, off(TS, "prev"))],
    "thread.next": [(8, off(TS, "next"))],
    "thread.interp": [(8, off(TS, "interp"))],
    "thread.frame": [(8, off(TS, "frame")), (11, None), (13, off(TS, "current_frame"))],
    "thread.cframe": [(8, None), (11, off(TS, "cframe")), (13, None)],
    "thread.cframe_current_frame": [
        (8, None),
        (11, off("_PyCFrame", "current_frame")),
        (13, None),
    ],
    "thread.thread_id": [(8, off(TS, "thread_id"))],
    "thread.native_thread_id": [(8, None), (11, off(TS, "native_thread_id"))],
    "thread.datastack_chunk": [(8, None), (11, off(TS, "datastack_chunk"))],
    "thread.datastack_top": [(8, None), (11, off(TS, "datastack_top"))],
    "thread.exc_info": [(8, off(TS, "exc_info"))],
    "thread.exc_state": [(8, off(TS, "exc_state"))],
    "thread.status": [(8, None), (12, off(TS, "_status"))],
    # Not an offset: the bit of _status that is set while the thread holds
    # the GIL. 3.12 sets `active` right after taking the GIL and clears it
    # right before dropping it (_PyThreadState_SwapNoGIL in Python/pystate.c,
    # PyEval_SaveThread/RestoreThread in Python/ceval_gil.c); 3.13 has
    # `holds_gil` itself.
    "thread.holds_gil_bit": [(8, None), (12, status_bit("active")), (13, status_bit("holds_gil"))],
    # _PyStackChunk
    "chunk.previous": [(8, None), (11, off("_PyStackChunk", "previous"))],
    "chunk.size": [(8, None), (11, off("_PyStackChunk", "size"))],
    "chunk.top": [(8, None), (11, off("_PyStackChunk", "top"))],
    "chunk.data": [(8, None), (11, off("_PyStackChunk", "data"))],
    # PyFrameObject (3.8-3.10) / _PyInterpreterFrame (3.11+)
    "frame.size": [(8, off(FO, "f_localsplus")), (11, off(IF, "localsplus"))],
    "frame.previous": [(8, off(FO, "f_back")), (11, off(IF, "previous"))],
    "frame.code": [(8, off(FO, "f_code")), (11, off(IF, "f_code")), (13, off(IF, "f_executable"))],
    "frame.lasti": [(8, off(FO, "f_lasti")), (11, None)],
    "frame.instr_ptr": [(8, None), (11, off(IF, "prev_instr")), (13, off(IF, "instr_ptr"))],
    "frame.localsplus": [(8, off(FO, "f_localsplus")), (11, off(IF, "localsplus"))],
    "frame.owner": [(8, None), (11, off(IF, "owner"))],
    "frame.is_entry": [(8, None), (11, off(IF, "is_entry")), (12, None)],
    # PyCodeObject
    "code.size": [(8, "sizeof(PyCodeObject)")],
    "code.argcount": [(8, off(CO, "co_argcount"))],
    "code.nlocals": [(8, off(CO, "co_nlocals"))],
    "code.flags": [(8, off(CO, "co_flags"))],
    "code.firstlineno": [(8, off(CO, "co_firstlineno"))],
    "code.code": [(8, off(CO, "co_code")), (11, None)],
    "code.code_adaptive": [(8, None), (11, off(CO, "co_code_adaptive"))],
    "code.varnames": [(8, off(CO, "co_varnames")), (11, None)],
    "code.cellvars": [(8, off(CO, "co_cellvars")), (11, None)],
    "code.freevars": [(8, off(CO, "co_freevars")), (11, None)],
    "code.localsplusnames": [(8, None), (11, off(CO, "co_localsplusnames"))],
    "code.localspluskinds": [(8, None), (11, off(CO, "co_localspluskinds"))],
    "code.filename": [(8, off(CO, "co_filename"))],
    "code.name": [(8, off(CO, "co_name"))],
    "code.qualname": [(8, None), (11, off(CO, "co_qualname"))],
    "code.linetable": [(8, off(CO, "co_lnotab")), (10, off(CO, "co_linetable"))],
    "code.stacksize": [(8, off(CO, "co_stacksize"))],
    "code.nlocalsplus": [(8, None), (11, off(CO, "co_nlocalsplus"))],
    # PyObject / PyVarObject
    "object.ob_type": [(8, off("PyObject", "ob_type"))],
    "object.ob_size": [(8, off("PyVarObject", "ob_size"))],
    # PyTypeObject / PyHeapTypeObject
    "type.tp_name": [(8, off("PyTypeObject", "tp_name"))],
    "type.tp_basicsize": [(8, off("PyTypeObject", "tp_basicsize"))],
    "type.tp_dictoffset": [(8, off("PyTypeObject", "tp_dictoffset"))],
    "type.tp_flags": [(8, off("PyTypeObject", "tp_flags"))],
    "type.ht_cached_keys": [(8, off("PyHeapTypeObject", "ht_cached_keys"))],
    # str
    "unicode.state": [(8, off("PyASCIIObject", "state"))],
    "unicode.length": [(8, off("PyASCIIObject", "length"))],
    "unicode.ascii_size": [(8, "sizeof(PyASCIIObject)")],
    "unicode.compact_size": [(8, "sizeof(PyCompactUnicodeObject)")],
    # bytes, tuple, list, int, float
    "bytes.ob_sval": [(8, off("PyBytesObject", "ob_sval"))],
    "tuple.ob_item": [(8, off("PyTupleObject", "ob_item"))],
    "list.ob_item": [(8, off("PyListObject", "ob_item"))],
    "long_.lv_tag": [(8, None), (12, off("PyLongObject", "long_value.lv_tag"))],
    "long_.ob_digit": [
        (8, off("PyLongObject", "ob_digit")),
        (12, off("PyLongObject", "long_value.ob_digit")),
    ],
    "float_.ob_fval": [(8, off("PyFloatObject", "ob_fval"))],
    # dict
    "dict.ma_used": [(8, off("PyDictObject", "ma_used"))],
    "dict.ma_keys": [(8, off("PyDictObject", "ma_keys"))],
    "dict.ma_values": [(8, off("PyDictObject", "ma_values"))],
    "dict.dk_size": [(8, off(DK, "dk_size")), (11, None)],
    "dict.dk_log2_size": [(8, None), (11, off(DK, "dk_log2_size"))],
    "dict.dk_log2_index_bytes": [(8, None), (11, off(DK, "dk_log2_index_bytes"))],
    "dict.dk_kind": [(8, None), (11, off(DK, "dk_kind"))],
    "dict.dk_nentries": [(8, off(DK, "dk_nentries"))],
    "dict.dk_indices": [(8, off(DK, "dk_indices"))],
    "dict.values_values": [(8, None), (11, off("PyDictValues", "values"))],
    # cell, module
    "cell.ob_ref": [(8, off("PyCellObject", "ob_ref"))],
    "module.md_dict": [(8, off("PyModuleObject", "md_dict"))],
}


def expression(field, minor):
    chosen = None
    for first, expr in FIELDS[field]:
        if first <= minor:
            chosen = expr
    return chosen


# 3.13+ publish _Py_DebugOffsets at the start of _PyRuntime. Where one of its
# members means the same as a PyLayout field, validation checks that the
# live interpreter's value equals the table's. A pair (a, b) means a - b (the
# GIL members are offsets in PyInterpreterState; ours are inside the struct).
# Not compared: frame.size (debug offsets give sizeof(_PyInterpreterFrame),
# which includes localsplus[1]; ours is offsetof(localsplus)).
DEBUG_OFFSETS = {
    "runtime.interpreters_head": "runtime_state.interpreters_head",
    "interp.next": "interpreter_state.next",
    "interp.threads_head": "interpreter_state.threads_head",
    "interp.modules": "interpreter_state.imports_modules",
    "interp.ceval_gil": "interpreter_state.ceval_gil",
    "interp.gil_locked": (
        "interpreter_state.gil_runtime_state_locked",
        "interpreter_state.gil_runtime_state",
    ),
    "interp.gil_last_holder": (
        "interpreter_state.gil_runtime_state_holder",
        "interpreter_state.gil_runtime_state",
    ),
    "thread.size": "thread_state.size",
    "thread.prev": "thread_state.prev",
    "thread.next": "thread_state.next",
    "thread.interp": "thread_state.interp",
    "thread.frame": "thread_state.current_frame",
    "thread.thread_id": "thread_state.thread_id",
    "thread.native_thread_id": "thread_state.native_thread_id",
    "thread.datastack_chunk": "thread_state.datastack_chunk",
    "frame.previous": "interpreter_frame.previous",
    "frame.code": "interpreter_frame.executable",
    "frame.instr_ptr": "interpreter_frame.instr_ptr",
    "frame.localsplus": "interpreter_frame.localsplus",
    "frame.owner": "interpreter_frame.owner",
    "code.size": "code_object.size",
    "code.filename": "code_object.filename",
    "code.name": "code_object.name",
    "code.qualname": "code_object.qualname",
    "code.linetable": "code_object.linetable",
    "code.firstlineno": "code_object.firstlineno",
    "code.argcount": "code_object.argcount",
    "code.localsplusnames": "code_object.localsplusnames",
    "code.localspluskinds": "code_object.localspluskinds",
    "code.code_adaptive": "code_object.co_code_adaptive",
    "object.ob_type": "pyobject.ob_type",
    "object.ob_size": "tuple_object.ob_size",
    "type.tp_name": "type_object.tp_name",
    "type.tp_flags": "type_object.tp_flags",
    "tuple.ob_item": "tuple_object.ob_item",
    "list.ob_item": "list_object.ob_item",
    "dict.ma_keys": "dict_object.ma_keys",
    "dict.ma_values": "dict_object.ma_values",
    "float_.ob_fval": "float_object.ob_fval",
    "long_.lv_tag": "long_object.lv_tag",
    "long_.ob_digit": "long_object.ob_digit",
    "bytes.ob_sval": "bytes_object.ob_sval",
    "unicode.state": "unicode_object.state",
    "unicode.length": "unicode_object.length",
    "unicode.ascii_size": "unicode_object.asciiobject_size",
}
DEBUG_OFFSETS_SINCE = 13


# ---------------------------------------------------------------------------
# Probe source.
# ---------------------------------------------------------------------------

# Headers tried in this order; those missing from a version's include dir are
# left out. Python.h does not include these.
EXTRA_HEADERS = [
    "frameobject.h",
    "longintrepr.h",  # 3.8-3.10; Python.h includes cpython/longintrepr.h in 3.11+
    "internal/pycore_pystate.h",
    "internal/pycore_runtime.h",
    "internal/pycore_interp.h",
    "internal/pycore_gil.h",
    "internal/pycore_ceval_state.h",
    "internal/pycore_frame.h",
    "internal/pycore_code.h",
    "internal/pycore_dict.h",
    "internal/pycore_moduleobject.h",
]

# Objects/dict-common.h is not installed in 3.8-3.10. The struct is the same
# in all three (only comments differ):
#   https://github.com/python/cpython/blob/v3.8.18/Objects/dict-common.h
#   https://github.com/python/cpython/blob/v3.9.18/Objects/dict-common.h
#   https://github.com/python/cpython/blob/v3.10.13/Objects/dict-common.h
# 3.11+ define it in Include/internal/pycore_dict.h.
MIRROR_DICT_KEYS_38_310 = """
/* Mirror of Objects/dict-common.h (3.8-3.10), not installed:
 * https://github.com/python/cpython/blob/v3.%(minor)d.%(micro)d/Objects/dict-common.h */
typedef Py_ssize_t (*vigil_dict_lookup_func)(PyDictObject *mp, PyObject *key,
                                              Py_hash_t hash, PyObject **value_addr);
struct _dictkeysobject {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;               /* size of dk_indices, a power of 2 */
    vigil_dict_lookup_func dk_lookup;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];                /* then PyDictKeyEntry dk_entries[] */
};
"""

# PyModuleObject is private to Objects/moduleobject.c in 3.8 and 3.9; 3.10+
# define it in Include/internal/pycore_moduleobject.h.
MIRROR_MODULE_38_39 = """
/* Mirror of the PyModuleObject in Objects/moduleobject.c (3.8-3.9), not installed:
 * https://github.com/python/cpython/blob/v3.%(minor)d.%(micro)d/Objects/moduleobject.c */
typedef struct {
    PyObject_HEAD
    PyObject *md_dict;
    struct PyModuleDef *md_def;
    void *md_state;
    PyObject *md_weaklist;
    PyObject *md_name;
} PyModuleObject;
"""


def probe_source(interp):
    minor, micro = interp["version"][1], interp["version"][2]
    inc = interp["include"]
    lines = [
        "/* vigil layout probe for CPython %s (generated by tools/gen_layouts.py) */"
        % interp["version_str"],
        "#define Py_BUILD_CORE 1",
        "#include <Python.h>",
    ]
    for header in EXTRA_HEADERS:
        if os.path.exists(os.path.join(inc, header)):
            lines.append("#include <%s>" % header)
    lines += ["#include <stddef.h>", "#include <stdio.h>", "#include <string.h>"]
    subst = {"minor": minor, "micro": micro}
    if minor <= 10:
        lines.append(MIRROR_DICT_KEYS_38_310 % subst)
    if minor <= 9:
        lines.append(MIRROR_MODULE_38_39 % subst)
    lines.append("int main(void) {")
    for field in FIELDS:
        expr = expression(field, minor)
        if expr is not None:
            lines.append('    printf("%%s %%lld\\n", "%s", (long long)(%s));' % (field, expr))
    if minor >= DEBUG_OFFSETS_SINCE:
        lines.append(
            '    printf("debug:base %lld -1\\n", (long long)offsetof(_PyRuntimeState, debug_offsets));'
        )
        for field, member in DEBUG_OFFSETS.items():
            a, b = member if isinstance(member, tuple) else (member, None)
            b_expr = "offsetof(_Py_DebugOffsets, %s)" % b if b else "-1"
            lines.append(
                '    printf("debug:%s %%lld %%lld\\n", (long long)offsetof(_Py_DebugOffsets, %s), '
                "(long long)(%s));" % (field, a, b_expr)
            )
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Validation against the live interpreter (runs inside the target Python).
# ---------------------------------------------------------------------------

VALIDATOR = r'''
import ctypes, json, sys, threading

L = json.loads(sys.argv[1])
V = sys.version_info[:2]
fails = []

def o(name):
    return L[name]

def has(name):
    return L.get(name, -1) >= 0

def ptr(addr):
    return ctypes.c_void_p.from_address(addr).value or 0

def i32(addr):
    return ctypes.c_int.from_address(addr).value

def u8(addr):
    return ctypes.c_uint8.from_address(addr).value

def ssz(addr):
    return ctypes.c_ssize_t.from_address(addr).value

def ulong(addr):
    return ctypes.c_ulong.from_address(addr).value

def mem(addr, n):
    return ctypes.string_at(addr, n)

def check(name, ok, detail=""):
    if not ok:
        fails.append("%s: %s" % (name, detail))

api = ctypes.pythonapi
api.PyThreadState_Get.restype = ctypes.c_void_p
api.PyInterpreterState_Main.restype = ctypes.c_void_p
tstate = api.PyThreadState_Get()
interp = api.PyInterpreterState_Main()
runtime = ctypes.addressof(ctypes.c_char.in_dll(api, "_PyRuntime"))
CFRAME = L["thread.cframe"]
CFRAME_CURRENT = L["thread.cframe_current_frame"]
TFRAME = L["thread.frame"]

# Runtime and interpreter (only the main interpreter exists).
check("runtime.interpreters_head", ptr(runtime + o("runtime.interpreters_head")) == interp)
check("interp.next", ptr(interp + o("interp.next")) == 0)
check("interp.modules", ptr(interp + o("interp.modules")) == id(sys.modules))

# A subinterpreter becomes the head of the list, linked to the main one.
try:
    import _xxsubinterpreters as subinterpreters
except ImportError:
    try:
        import _interpreters as subinterpreters
    except ImportError:
        subinterpreters = None
if subinterpreters is not None:
    sub = subinterpreters.create()
    head = ptr(runtime + o("runtime.interpreters_head"))
    check("runtime.interpreters_head", head not in (0, interp), "subinterpreter not at head")
    check("interp.next", head != 0 and ptr(head + o("interp.next")) == interp)
    subinterpreters.destroy(sub)

# A second thread, parked, becomes the head of the thread list.
other = {}
parked = threading.Event()
release = threading.Event()

def park():
    other["tstate"] = api.PyThreadState_Get()
    other["ident"] = threading.get_ident()
    other["native"] = threading.get_native_id()
    parked.set()
    release.wait()

thread = threading.Thread(target=park)
thread.start()
parked.wait()
ots = other["tstate"]

check("interp.threads_head", ptr(interp + o("interp.threads_head")) == ots)
check("thread.interp", ptr(tstate + o("thread.interp")) == interp)
check("thread.interp", ptr(ots + o("thread.interp")) == interp)
check("thread.next", ptr(ots + o("thread.next")) == tstate)
check("thread.next", ptr(tstate + o("thread.next")) == 0)
check("thread.prev", ptr(tstate + o("thread.prev")) == ots)
check("thread.prev", ptr(ots + o("thread.prev")) == 0)
check("thread.thread_id", ulong(tstate + o("thread.thread_id")) == threading.get_ident())
check("thread.thread_id", ulong(ots + o("thread.thread_id")) == other["ident"])
if has("thread.native_thread_id"):
    check("thread.native_thread_id",
          ulong(tstate + o("thread.native_thread_id")) == threading.get_native_id())
    check("thread.native_thread_id", ulong(ots + o("thread.native_thread_id")) == other["native"])
check("thread.size", o("thread.size") > max(o("thread.thread_id"), o("thread.next")))
if has("thread.status"):
    def holds_gil(state):
        return (ctypes.c_uint32.from_address(state + o("thread.status")).value
                >> o("thread.holds_gil_bit")) & 1
    check("thread.holds_gil_bit", holds_gil(tstate) == 1, "this thread holds the GIL")
    check("thread.holds_gil_bit", holds_gil(ots) == 0, "the parked thread does not")

# The GIL: held by this thread, which took it back from the parked one
# (so the switch counter after `locked` is not 1 either).
if has("runtime.gil_locked"):
    gil = runtime
    locked, holder = o("runtime.gil_locked"), o("runtime.gil_last_holder")
else:
    gil = ptr(interp + o("interp.ceval_gil"))
    locked, holder = o("interp.gil_locked"), o("interp.gil_last_holder")
    check("interp.ceval_gil", gil != 0)
if gil:
    check("gil_locked", i32(gil + locked) == 1)
    check("gil_last_holder", ptr(gil + holder) == tstate)
release.set()
thread.join()


def frames(marker):
    # Read the current frame inline: calling a Python helper would push a frame.
    if CFRAME >= 0:
        f = ctypes.c_void_p.from_address(tstate + CFRAME).value
        f = ctypes.c_void_p.from_address(f + CFRAME_CURRENT).value
    else:
        f = ctypes.c_void_p.from_address(tstate + TFRAME).value
    top = ctypes.c_void_p.from_address(tstate + TOP).value if TOP >= 0 else 0
    me = sys._getframe(0)
    caller = me.f_back
    check("frame.size", o("frame.size") == o("frame.localsplus"))
    check("frame.localsplus", ptr(f + o("frame.localsplus")) == id(marker))
    if V < (3, 11):
        check("thread.frame", f == id(me))
        check("frame.previous", ptr(f + o("frame.previous")) == id(caller))
        check("frame.code", ptr(f + o("frame.code")) == id(me.f_code))
        return
    check("frame.code", ptr(f + o("frame.code")) == id(me.f_code))
    prev = ptr(f + o("frame.previous"))
    check("frame.previous", prev != 0 and ptr(prev + o("frame.code")) == id(caller.f_code))
    check("frame.owner", u8(f + o("frame.owner")) == 0)  # FRAME_OWNED_BY_THREAD
    if has("frame.is_entry"):
        check("frame.is_entry", u8(f + o("frame.is_entry")) == 0)
    start = id(me.f_code) + o("code.code_adaptive")
    ip = ptr(f + o("frame.instr_ptr"))
    check("frame.instr_ptr", start - 2 <= ip < start + len(me.f_code.co_code), hex(ip))
    # This is the newest frame: the data stack ends right after it.
    co = me.f_code
    expected_top = f + o("frame.size") + 8 * (co.co_nlocals + co.co_stacksize)
    check("thread.datastack_top", top == expected_top, "%#x != %#x" % (top, expected_top))
    # A frame takes its header, locals and value stack on the data stack: the
    # newest one ends at the top.
    words = i32(id(co) + o("code.nlocalsplus")) + i32(id(co) + o("code.stacksize"))
    check("code.nlocalsplus", f + o("frame.size") + 8 * words == top)
    chunk = ptr(tstate + o("thread.datastack_chunk"))
    size = ssz(chunk + o("chunk.size"))
    check("chunk.data", chunk + o("chunk.data") <= f < chunk + size)
    check("chunk.size", f < top <= chunk + size)
    check("chunk layout", (o("chunk.previous"), o("chunk.size"), o("chunk.top"), o("chunk.data"))
          == (0, 8, 16, 24))


def owner_of_generator_frame():
    if CFRAME >= 0:
        f = ctypes.c_void_p.from_address(tstate + CFRAME).value
        f = ctypes.c_void_p.from_address(f + CFRAME_CURRENT).value
    else:
        f = ctypes.c_void_p.from_address(tstate + TFRAME).value
    yield u8(f + o("frame.owner"))


def entry_flag(_):
    f = ctypes.c_void_p.from_address(tstate + CFRAME).value
    f = ctypes.c_void_p.from_address(f + CFRAME_CURRENT).value
    return u8(f + o("frame.is_entry"))


TOP = L["thread.datastack_top"]


def caller_of_frames():
    marker = object()
    frames(marker)


caller_of_frames()
# exc_info points at the thread's own exc_state unless a generator runs, in
# which case it points into the generator (gen_send_ex2, and on 3.12+ also
# FOR_ITER_GEN/SEND_GEN, which run the generator's frame in the same loop).
own_exc_state = tstate + o("thread.exc_state")
check("thread.exc_state", ptr(tstate + o("thread.exc_info")) == own_exc_state)


def exc_info_in_generator():
    yield ptr(tstate + o("thread.exc_info"))


check("thread.exc_info", all(info != own_exc_state for info in exc_info_in_generator()))
check("thread.exc_info", ptr(tstate + o("thread.exc_info")) == own_exc_state)
if V >= (3, 11):
    check("frame.owner", next(owner_of_generator_frame()) == 1)  # FRAME_OWNED_BY_GENERATOR
if has("frame.is_entry"):
    check("frame.is_entry", list(map(entry_flag, [0])) == [1])  # called from C


def suspended():
    local = object()
    yield local
    yield local


gen = suspended()
next(gen)
if V < (3, 11):
    gf = gen.gi_frame
    raw = i32(id(gf) + o("frame.lasti"))
    check("frame.lasti", raw * (2 if V >= (3, 10) else 1) == gf.f_lasti, str(raw))


# Code objects.
class Holder:
    def code_sample(self, b, *, c):
        cellvar = b

        def inner():
            return cellvar

        return inner


co = Holder.code_sample.__code__
base = id(co)
check("code.argcount", i32(base + o("code.argcount")) == co.co_argcount)
check("code.nlocals", i32(base + o("code.nlocals")) == co.co_nlocals)
check("code.flags", i32(base + o("code.flags")) == co.co_flags)
check("code.firstlineno", i32(base + o("code.firstlineno")) == co.co_firstlineno)
check("code.filename", ptr(base + o("code.filename")) == id(co.co_filename))
check("code.name", ptr(base + o("code.name")) == id(co.co_name))
if V >= (3, 10):
    check("code.linetable", ptr(base + o("code.linetable")) == id(co.co_linetable))
else:
    check("code.linetable", ptr(base + o("code.linetable")) == id(co.co_lnotab))
if V < (3, 11):
    check("code.size", o("code.size") == type(co).__basicsize__)
    check("code.code", ptr(base + o("code.code")) == id(co.co_code))
    check("code.varnames", ptr(base + o("code.varnames")) == id(co.co_varnames))
    check("code.cellvars", ptr(base + o("code.cellvars")) == id(co.co_cellvars))
    inner = Holder().code_sample(2, c=3).__code__
    check("code.freevars", ptr(id(inner) + o("code.freevars")) == id(inner.co_freevars))
else:
    check("code.qualname", ptr(base + o("code.qualname")) == id(co.co_qualname))
    names = ptr(base + o("code.localsplusnames"))
    check("code.localsplusnames", ptr(names + o("object.ob_type")) == id(tuple)
          and ptr(names + o("tuple.ob_item")) == id(co.co_varnames[0]))
    kinds = ptr(base + o("code.localspluskinds"))
    check("code.localspluskinds", ptr(kinds + o("object.ob_type")) == id(bytes))
    adaptive = co._co_code_adaptive
    check("code.code_adaptive", o("code.code_adaptive") == type(co).__basicsize__
          and mem(base + o("code.code_adaptive"), len(adaptive)) == adaptive)
    check("code.size", o("code.code_adaptive") < o("code.size"))

# Objects.
t = (object(), 2)
check("object.ob_type", ptr(id(t) + o("object.ob_type")) == id(tuple))
check("object.ob_size", ssz(id(t) + o("object.ob_size")) == 2)
check("tuple.ob_item", ptr(id(t) + o("tuple.ob_item")) == id(t[0]))
lst = [object()]
check("list.ob_item", ptr(ptr(id(lst) + o("list.ob_item"))) == id(lst[0]))
b = b"vigil-bytes"
check("bytes.ob_sval", mem(id(b) + o("bytes.ob_sval"), len(b) + 1) == b + b"\0")
fl = float("1.625")
check("float_.ob_fval", ctypes.c_double.from_address(id(fl) + o("float_.ob_fval")).value == 1.625)
n = int("12345")
check("long_.ob_digit", ctypes.c_uint32.from_address(id(n) + o("long_.ob_digit")).value == 12345)
if has("long_.lv_tag"):
    check("long_.lv_tag", ulong(id(n) + o("long_.lv_tag")) == (1 << 3))  # 1 digit, positive
else:
    check("long_.ob_digit", ssz(id(n) + o("object.ob_size")) == 1)

s = "".join(["vigil", "-", "ascii"])
check("unicode.length", ssz(id(s) + o("unicode.length")) == len(s))
st = u8(id(s) + o("unicode.state"))
check("unicode.state", (st >> 2) & 7 == 1 and (st >> 5) & 1 == 1 and (st >> 6) & 1 == 1, hex(st))
check("unicode.ascii_size", mem(id(s) + o("unicode.ascii_size"), len(s)) == s.encode())
u = "".join(["vigil-", "\xe9"])
check("unicode.compact_size",
      mem(id(u) + o("unicode.compact_size"), len(u)) == u.encode("latin-1"))

check("module.md_dict", ptr(id(sys) + o("module.md_dict")) == id(sys.__dict__))


def make_cell():
    captured = object()

    def inner():
        return captured

    return inner.__closure__[0], captured


cell, captured = make_cell()
check("cell.ob_ref", ptr(id(cell) + o("cell.ob_ref")) == id(captured))

check("type.tp_name", ctypes.string_at(ptr(id(int) + o("type.tp_name"))) == b"int")
check("type.tp_basicsize", ssz(id(int) + o("type.tp_basicsize")) == int.__basicsize__)


class Sample:
    def __init__(self):
        self.first = object()
        self.second = 2


check("type.tp_dictoffset", ssz(id(Sample) + o("type.tp_dictoffset")) == Sample.__dictoffset__)
check("type.tp_flags", ulong(id(Sample) + o("type.tp_flags")) == Sample.__flags__)
inst = Sample()

# Dicts: a combined table of three str keys has 8 slots with 1-byte indices.
d = {"a": 1, "b": 2, "c": 3}
check("dict.ma_used", ssz(id(d) + o("dict.ma_used")) == 3)
check("dict.ma_values", ptr(id(d) + o("dict.ma_values")) == 0)
keys = ptr(id(d) + o("dict.ma_keys"))
check("dict.dk_nentries", ssz(keys + o("dict.dk_nentries")) == 3)
if has("dict.dk_size"):
    check("dict.dk_size", ssz(keys + o("dict.dk_size")) == 8)
else:
    check("dict.dk_log2_size", u8(keys + o("dict.dk_log2_size")) == 3)
    check("dict.dk_log2_index_bytes", u8(keys + o("dict.dk_log2_index_bytes")) == 3)
    check("dict.dk_kind", u8(keys + o("dict.dk_kind")) == 1)  # DICT_KEYS_UNICODE
check("dict.dk_indices", sorted(mem(keys + o("dict.dk_indices"), 8)) == [0, 1, 2] + [255] * 5)
# A split table: the instance dict shares the class's cached keys.
idict = inst.__dict__
values = ptr(id(idict) + o("dict.ma_values"))
check("dict.ma_values (split)", values != 0)
check("type.ht_cached_keys",
      ptr(id(Sample) + o("type.ht_cached_keys")) == ptr(id(idict) + o("dict.ma_keys")))
if has("dict.values_values") and values:
    check("dict.values_values", ptr(values + o("dict.values_values")) == id(inst.first))
elif values:
    check("dict.ma_values (split)", ptr(values) == id(inst.first))

# 3.13+: the interpreter's own _Py_DebugOffsets must agree with the table.
D = json.loads(sys.argv[2])
if D:
    dbg = runtime + D.pop("base")[0]
    check("_Py_DebugOffsets.cookie", mem(dbg, 8) == b"xdebugpy")
    check("_Py_DebugOffsets.version", ctypes.c_uint64.from_address(dbg + 8).value == sys.hexversion)
    for field, (a, b) in sorted(D.items()):
        value = ctypes.c_uint64.from_address(dbg + a).value
        if b >= 0:
            value -= ctypes.c_uint64.from_address(dbg + b).value
        check(field, value == L[field], "table %d, _Py_DebugOffsets %d" % (L[field], value))

print(json.dumps(fails))
'''


# ---------------------------------------------------------------------------
# Discovery.
# ---------------------------------------------------------------------------

QUERY = r"""
import json, sys, sysconfig
paths = sysconfig.get_paths()
print(json.dumps({
    "version": list(sys.version_info[:3]),
    "releaselevel": sys.version_info.releaselevel,
    "serial": sys.version_info.serial,
    "include": paths.get("include"),
    "platinclude": paths.get("platinclude"),
    "debug": bool(sysconfig.get_config_var("Py_DEBUG")),
    "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "maxsize": sys.maxsize,
}))
"""


def pyenv_roots():
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv") or os.path.expanduser("~/.pyenv/bin/pyenv")
    if os.path.exists(pyenv):
        try:
            out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and out.stdout.strip():
                roots.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    roots.append(os.path.expanduser("~/.pyenv"))
    return roots


def candidates():
    patterns = [os.path.join(r, "versions", "*", "bin", "python3.*") for r in pyenv_roots()]
    patterns += ["/usr/bin/python3.*", "/usr/local/bin/python3.*"]
    seen, found = set(), []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if not re.fullmatch(r"python3\.\d+", os.path.basename(path)):
                continue  # python3.11-config, python3.13t, python3.12d, ...
            if not os.access(path, os.X_OK):
                continue
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            found.append(path)
    return found


def describe(path):
    try:
        out = subprocess.run([path, "-c", QUERY], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return None, "cannot run: %s" % e
    if out.returncode != 0:
        return None, "cannot run: %s" % out.stderr.strip().splitlines()[-1:]
    info = json.loads(out.stdout)
    info["path"] = path
    maj, mi, mc = info["version"]
    info["version_str"] = "%d.%d.%d" % (maj, mi, mc)
    if info["releaselevel"] != "final":
        info["version_str"] += "%s%d" % (info["releaselevel"][0], info["serial"])
    if (maj, mi) < (3, 8):
        return None, "older than 3.8"
    if info["debug"]:
        return None, "debug build (Py_DEBUG)"
    if info["gil_disabled"]:
        return None, "free-threaded build"
    if info["maxsize"] < 2**63 - 1:
        return None, "not a 64-bit build"
    if not os.path.exists(os.path.join(info["include"] or "", "internal", "pycore_pystate.h")):
        return None, "no internal headers in %s (install the -dev package)" % info["include"]
    return info, None


def tilde(path):
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if path.startswith(home + os.sep) else path


# ---------------------------------------------------------------------------
# Probing.
# ---------------------------------------------------------------------------


def run_probe(info, workdir, cc, verbose):
    tag = "%s_%d" % (info["version_str"].replace(".", "_"), abs(hash(info["path"])) % 10**6)
    src = os.path.join(workdir, "probe_%s.c" % tag)
    exe = os.path.join(workdir, "probe_%s" % tag)
    with open(src, "w") as f:
        f.write(probe_source(info))
    incs = ["-I", info["include"]]
    if info.get("platinclude") and info["platinclude"] != info["include"]:
        incs += ["-I", info["platinclude"]]
    cmd = cc.split() + ["-std=gnu11", "-w"] + incs + [src, "-o", exe]
    if verbose:
        print("  $ " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        hint = ""
        if info["version"][1] > NEWEST_KNOWN_MINOR:
            hint = (
                "\n3.%d is newer than this generator knows (3.%d): update FIELDS / "
                "EXTRA_HEADERS, or pass --skip 3.%d"
                % (info["version"][1], NEWEST_KNOWN_MINOR, info["version"][1])
            )
        raise SystemExit(
            "error: probe for %s (%s) does not compile (source kept in %s):\n%s%s"
            % (info["version_str"], info["path"], src, out.stderr[-4000:], hint)
        )
    out = subprocess.run([exe], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("error: probe for %s failed: %s" % (info["version_str"], out.stderr))
    values, debug = {}, {}
    for line in out.stdout.splitlines():
        if line.startswith("debug:"):
            name, a, b = line[len("debug:") :].split()
            debug[name] = [int(a), int(b)]
        else:
            name, value = line.split()
            values[name] = int(value)
    table = {field: values.get(field, -1) for field in FIELDS}
    for field in FIELDS:
        if expression(field, info["version"][1]) is not None and field not in values:
            raise SystemExit("error: probe for %s printed no %s" % (info["version_str"], field))
    return table, debug


def validate(info, table, debug):
    out = subprocess.run(
        [info["path"], "-c", VALIDATOR, json.dumps(table), json.dumps(debug)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-3:]
        if any("No module named '_ctypes'" in l or "No module named 'ctypes'" in l for l in tail):
            print("  warning: %s has no ctypes, not validated" % info["path"], file=sys.stderr)
            return
        raise SystemExit(
            "error: validating %s (%s) crashed:\n%s"
            % (info["version_str"], info["path"], out.stderr[-4000:])
        )
    fails = json.loads(out.stdout.strip().splitlines()[-1])
    if fails:
        raise SystemExit(
            "error: %s (%s): probed offsets do not match the live interpreter:\n  %s"
            % (info["version_str"], info["path"], "\n  ".join(fails))
        )


# ---------------------------------------------------------------------------
# layout.h and output.
# ---------------------------------------------------------------------------


def layout_fields():
    """PyLayout's groups and fields, in declaration order, parsed from layout.h."""
    text = open(LAYOUT_H).read()
    body = text[text.index("struct PyLayout {") :]
    groups = []
    for m in re.finditer(r"struct\s+\w+\s*\{(.*?)\}\s*(\w+);", body, re.S):
        members = re.findall(r"^\s*Offset\s+(\w+)\s*=", m.group(1), re.M)
        groups.append((m.group(2), members))
    return groups


def check_coverage(groups):
    declared = ["%s.%s" % (g, f) for g, members in groups for f in members]
    missing = [f for f in declared if f not in FIELDS]
    extra = [f for f in FIELDS if f not in declared]
    if missing or extra:
        raise SystemExit(
            "error: FIELDS and PyLayout in %s disagree; in layout.h only: %s; in FIELDS only: %s"
            % (LAYOUT_H, missing or "-", extra or "-")
        )


def render(groups, tables, sources):
    out = []
    out.append("// generated by tools/gen_layouts.py — do not edit.")
    out.append("// Regenerate with: python3 tools/gen_layouts.py (needs each CPython's headers).")
    out.append("//")
    out.append("// One table per minor version, from offsetof()/sizeof() probes compiled")
    out.append("// against that version's own headers and checked against the live")
    out.append("// interpreter. micro is 0: a table covers every patch release of its minor.")
    out.append("// Sources:")
    for minor in sorted(tables):
        descr = ", ".join("%s (%s)" % (i["version_str"], tilde(i["path"])) for i in sources[minor])
        if len(sources[minor]) > 1:
            descr += ": identical"
        out.append("//   3.%d: %s" % (minor, descr))
    out.append("")
    out.append('#include <span>')
    out.append("")
    out.append('#include "core/layout.h"')
    out.append("")
    out.append("namespace vigil::detail {")
    out.append("")
    out.append("namespace {")
    out.append("")
    names = []
    for minor in sorted(tables):
        name = "kLayout3_%d" % minor
        names.append(name)
        table = tables[minor]
        out.append("constexpr PyLayout %s = {" % name)
        out.append("    .version = {.major = 3, .minor = %d, .micro = 0}," % minor)
        for group, members in groups:
            values = []
            for member in members:
                value = table["%s.%s" % (group, member)]
                values.append(".%s = %s" % (member, "kNone" if value < 0 else value))
            out.append("    .%s = {%s}," % (group, ", ".join(values)))
        out.append("};")
        out.append("")
    out.append("constexpr PyLayout kLayouts[] = {%s};" % ", ".join(names))
    out.append("")
    out.append("}  // namespace")
    out.append("")
    out.append("// Oldest first, one per minor, consecutive.")
    out.append("std::span<const PyLayout> generatedLayouts() { return kLayouts; }")
    out.append("")
    out.append("}  // namespace vigil::detail")
    out.append("")
    return "\n".join(out)


def clang_format(text, output):
    exe = shutil.which("clang-format")
    if not exe:
        print("warning: clang-format not found, output not formatted", file=sys.stderr)
        return text
    style = "file:" + os.path.join(REPO, ".clang-format")
    out = subprocess.run(
        [exe, "--style=" + style, "--assume-filename=" + output],
        input=text,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        # Older clang-format has no "file:PATH"; run it from the repo instead.
        out = subprocess.run(
            [exe, "--style=file", "--assume-filename=" + output],
            input=text,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
    if out.returncode != 0:
        raise SystemExit("error: clang-format failed: %s" % out.stderr)
    return out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default=DEFAULT_OUTPUT)
    ap.add_argument("--check", action="store_true", help="compare with --output, do not write")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--skip", action="append", default=[], metavar="3.X", help="ignore a minor")
    ap.add_argument("--no-validate", action="store_true", help="skip the live-interpreter check")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    groups = layout_fields()
    check_coverage(groups)
    skip = {tuple(int(p) for p in s.split(".")) for s in args.skip}

    found = {}
    for path in candidates():
        info, why = describe(path)
        if info is None:
            print("skip %s: %s" % (path, why), file=sys.stderr)
            continue
        if tuple(info["version"][:2]) in skip:
            print("skip %s: --skip" % path, file=sys.stderr)
            continue
        if info["version"][0] != 3:
            continue
        found.setdefault(info["version"][1], []).append(info)

    tables, sources = {}, {}
    workdir = tempfile.mkdtemp(prefix="vigil-layouts-")
    try:
        for minor in sorted(found):
            per_patch = []
            for info in sorted(found[minor], key=lambda i: i["version"], reverse=True):
                print(
                    "3.%d: %s from %s (include %s)"
                    % (minor, info["version_str"], info["path"], info["include"]),
                    file=sys.stderr,
                )
                table, debug = run_probe(info, workdir, args.cc, args.verbose)
                if not args.no_validate:
                    validate(info, table, debug)
                per_patch.append((info, table))
            first_info, first = per_patch[0]
            for info, table in per_patch[1:]:
                diffs = [f for f in FIELDS if table[f] != first[f]]
                if diffs:
                    raise SystemExit(
                        "error: patch releases of 3.%d disagree; one table cannot serve both:\n  %s"
                        % (
                            minor,
                            "\n  ".join(
                                "%s: %s=%d, %s=%d"
                                % (f, first_info["version_str"], first[f],
                                   info["version_str"], table[f])
                                for f in diffs
                            ),
                        )
                    )
            tables[minor] = first
            sources[minor] = [i for i, _ in per_patch]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    missing = [m for m in REQUIRED_MINORS if m not in tables and (3, m) not in skip]
    if missing:
        raise SystemExit(
            "error: no usable interpreter for %s; install it (pyenv install 3.X) with its headers"
            % ", ".join("3.%d" % m for m in missing)
        )
    minors = sorted(tables)
    if minors != list(range(minors[0], minors[-1] + 1)):
        raise SystemExit("error: minors %s are not consecutive" % minors)

    text = clang_format(render(groups, tables, sources), args.output)
    if args.check:
        old = open(args.output).read() if os.path.exists(args.output) else ""
        if old != text:
            print("%s is out of date" % args.output, file=sys.stderr)
            return 1
        print("%s is up to date" % args.output, file=sys.stderr)
        return 0
    with open(args.output, "w") as f:
        f.write(text)
    print("wrote %s (%s)" % (args.output, ", ".join("3.%d" % m for m in minors)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
