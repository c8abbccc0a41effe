"""vigil.trace: records the line-by-line execution of chosen code.

    import vigil.trace
    vigil.trace.start(packages=["myapp", "trytond.modules.sale"],
                      paths=["/srv/scripts/*.py"])
    ...
    with vigil.trace.precise_timestamping():
        ...                  # every event here carries a real timestamp
    vigil.trace.stop()

The code of those packages (modules whose __name__ is one of them or under
one) and files (globs on the file's path; a directory means every file
under it) is recorded in every thread, asyncio tasks included: each call,
line, return and exception, with its thread and task. Everything else runs
at full speed (on 3.12+ through sys.monitoring; before, a C trace function
that turns line events off in the frames of other code).

One recording at a time per process; a thread where something else calls
sys.settrace (a debugger, before 3.12) stops being recorded.
"""
import atexit
import contextlib
import os
import sys
import threading

from . import _vigil

__all__ = ["precise_timestamping", "recording", "start", "stop"]

_lock = threading.Lock()
_previous_thread_hook = None
_exit_hook_installed = False


def _path_glob(path):
    path = os.fspath(path)
    if not path.startswith("*"):
        path = os.path.abspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "*")
    return path


def _thread_hook():
    if hasattr(threading, "gettrace"):
        return threading.gettrace()
    return getattr(threading, "_trace_hook", None)


def start(packages=(), paths=(), *, _sink="collect", _limit=1_000_000):
    """Starts recording the code of packages (module names) and paths (globs).

    Raises RuntimeError when a recording runs already, or when sys.monitoring
    has no tool id left (3.12+).
    """
    global _previous_thread_hook, _exit_hook_installed
    if isinstance(packages, str) or isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("packages and paths are lists")
    globs = [_path_glob(path) for path in paths]
    with _lock:
        _vigil.trace_start(list(packages), globs, _sink, _limit)
        if sys.version_info < (3, 12):
            # Threads started from now on install the C trace function.
            _previous_thread_hook = _thread_hook()
            threading.settrace(_vigil.trace_thread_hook)
        if not _exit_hook_installed:
            _exit_hook_installed = True
            atexit.register(stop)


def stop():
    """Stops the recording: every thread's last events are written. False if none ran."""
    global _previous_thread_hook
    with _lock:
        if sys.version_info < (3, 12) and _thread_hook() is _vigil.trace_thread_hook:
            threading.settrace(_previous_thread_hook)
        _previous_thread_hook = None
        return _vigil.trace_stop()


def recording():
    """Whether a recording runs."""
    return _vigil.trace_recording()


@contextlib.contextmanager
def precise_timestamping():
    """Every event of this thread inside the block (and of the functions it
    calls) carries a real timestamp (CLOCK_MONOTONIC); outside, events carry
    none of their own. Per thread: in asyncio, the tasks that run on this
    thread meanwhile are timed too."""
    previous = _vigil.trace_precise(True)
    try:
        yield
    finally:
        _vigil.trace_precise(previous)
