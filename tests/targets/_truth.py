"""Helpers for test targets: record the true stacks and say "ready".

A target parks its threads on known lines, then writes the truth (what
sys._current_frames() says about every thread) as JSON to the file named by
VIGIL_TRUTH, and finally one line to the file descriptor VIGIL_READY_FD: the
test waits on that pipe, never on a sleep.
"""
import json
import os
import sys
import threading
import traceback

FOREVER = threading.Lock()
FOREVER.acquire()


def describe(frame):
    """The stack of frame, innermost first, as vigil reports it."""
    frames = []
    while frame is not None:
        code = frame.f_code
        frames.append(
            {
                "function": code.co_name,
                "qualified_name": getattr(code, "co_qualname", code.co_name),
                "file": code.co_filename,
                "line": frame.f_lineno,
            }
        )
        frame = frame.f_back
    return frames


def at_line(frame, line):
    return frame is not None and frame.f_lineno == line


def wait_until_parked(parked):
    """parked: {ident: (code name, line)}: wait until each thread's innermost
    frame is that function at that line (it blocks there, so its stack no
    longer changes). Uses a condition poll, the target's own business."""
    switch = sys.getswitchinterval()
    while True:
        frames = sys._current_frames()
        if all(
            ident in frames
            and frames[ident].f_code.co_name == name
            and frames[ident].f_lineno == line
            for ident, (name, line) in parked.items()
        ):
            return
        threading.Event().wait(switch)


def emit(extra_threads=None, own_stack=None):
    """Writes the truth for every thread but the caller, whose own stack is
    given by own_stack (captured on the line where it will block)."""
    me = threading.get_ident()
    threads = []
    by_ident = {t.ident: t for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        stack = own_stack if ident == me else describe(frame)
        thread = by_ident.get(ident)
        threads.append(
            {
                "thread_id": ident,
                "native_thread_id": getattr(thread, "native_id", None),
                "name": thread.name if thread else None,
                "frames": stack,
            }
        )
    truth = {"pid": os.getpid(), "version": list(sys.version_info[:3]), "threads": threads}
    if extra_threads:
        truth.update(extra_threads)
    path = os.environ.get("VIGIL_TRUTH")
    if path:
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            json.dump(truth, out, ensure_ascii=False)
        os.replace(path + ".tmp", path)
    signal_ready()


def own_stack():
    """The caller's stack, innermost first, at the caller's current line."""
    return describe(sys._getframe(1))


def signal_ready(message="ready"):
    fd = int(os.environ.get("VIGIL_READY_FD", "-1"))
    if fd >= 0:
        os.write(fd, (message + "\n").encode())
        os.close(fd)
