"""vigil.trace: records the line-by-line execution of chosen code.

    import vigil.trace
    vigil.trace.start(packages=["myapp", "trytond.modules.sale"],
                      paths=["/srv/scripts/*.py"], dir="/var/tmp/traces")
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

The trace goes to <dir>/<YYMMDD-HHMMSS>/<name>/ (docs/trace-format.md), with
<dir>/latest linking to the newest run; a forked child records into
<run>/<name>-<pid>/. `vigil replay` and `vigil analyse` read it, also while
the process runs. While recording, the asyncio event loops' waits for I/O
are timed precisely, so idle time is not spread over the lines around it.

One recording at a time per process; a thread where something else calls
sys.settrace (a debugger, before 3.12) stops being recorded.
"""
import atexit
import contextlib
import functools
import os
import selectors
import sys
import threading

from . import _vigil

__all__ = ["DEFAULT_DIR", "directory", "flush", "precise_timestamping", "recording",
           "start", "start_from_settings", "stats", "stop"]

DEFAULT_DIR = "~/.local/state/vigil/trace"
DEFAULT_MAX_BYTES = 1 << 30

_lock = threading.Lock()
_previous_thread_hook = None
_hooks_installed = False
_unwrapped_selects = {}


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


def _process_name():
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    name = name[:-3] if name.endswith(".py") else name
    return name if name not in ("", "-c", "-m") else "python"


def start(packages=(), paths=(), *, dir=None, name=None, max_bytes=DEFAULT_MAX_BYTES):
    """Starts recording the code of packages (module names) and paths (globs)
    into a new run of dir (default DEFAULT_DIR); returns the directory the
    trace goes to. name: of the process directory (default: the program's);
    max_bytes: the largest size of the trace, oldest segments dropped first
    (0: no limit).

    Raises RuntimeError when a recording runs already, or when sys.monitoring
    has no tool id left (3.12+); OSError when dir cannot be written.
    """
    global _previous_thread_hook, _hooks_installed
    if isinstance(packages, str) or isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("packages and paths are lists")
    globs = [_path_glob(path) for path in paths]
    base = os.path.abspath(os.path.expanduser(os.fspath(dir if dir is not None else DEFAULT_DIR)))
    with _lock:
        where = _vigil.trace_start(list(packages), globs, base, name or _process_name(),
                                   max_bytes)
        if sys.version_info < (3, 12):
            # Threads started from now on install the C trace function.
            _previous_thread_hook = _thread_hook()
            threading.settrace(_vigil.trace_thread_hook)
        _wrap_selectors()
        if not _hooks_installed:
            _hooks_installed = True
            atexit.register(stop)
            os.register_at_fork(after_in_child=_after_fork_in_child)
        return where


def start_from_settings(settings):
    """Starts the recording the agent's [trace] configuration asks for
    (docs/configuration.md); returns its directory, or None when it asks for
    none: no packages nor paths, or a dir that does not exist and
    create_dir false."""
    if not settings["trace_packages"] and not settings["trace_paths"]:
        return None
    base = os.path.expanduser(settings["trace_dir"])
    if not settings["trace_create_dir"] and not os.path.isdir(base):
        return None
    return start(settings["trace_packages"], settings["trace_paths"], dir=base,
                 name=settings["service"] or None, max_bytes=settings["trace_max_size"])


def stop():
    """Stops the recording: every thread's last events are written. False if none ran."""
    global _previous_thread_hook
    with _lock:
        if sys.version_info < (3, 12) and _thread_hook() is _vigil.trace_thread_hook:
            threading.settrace(_previous_thread_hook)
        _previous_thread_hook = None
        _unwrap_selectors()
        return _vigil.trace_stop()


def flush():
    """Returns once everything recorded so far is in the trace's files."""
    _vigil.trace_flush()


def directory():
    """The directory the running recording writes, or None."""
    current = _vigil.trace_stats()
    return current["dir"] if current else None


def stats():
    """The running recording's counts: dir, events and blocks written, bytes
    on disk, segments dropped (the size limit), stopped (a full disk); None
    when not recording."""
    return _vigil.trace_stats()


def _after_fork_in_child():
    """The child records on into <run>/<name>-<pid>/; when that directory
    cannot be made, it says so in one line and runs on unrecorded."""
    if not _vigil.trace_recording():
        return
    try:
        _vigil.trace_after_fork_in_child()
    except OSError as error:
        sys.stderr.write("vigil: the forked child %d is not recorded: %s\n" % (os.getpid(), error))


def _selector_classes():
    names = ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector",
             "KqueueSelector")
    return [getattr(selectors, name) for name in names if hasattr(selectors, name)]


def _wrap_selectors():
    """asyncio waits for I/O in its selector's select(): timed precisely, the
    wait is not spread over the lines before and after it."""
    for cls in _selector_classes():
        if cls in _unwrapped_selects:
            continue
        original = cls.select

        @functools.wraps(original)
        def select(self, timeout=None, _original=original):
            previous = _vigil.trace_precise(True)
            try:
                return _original(self, timeout)
            finally:
                _vigil.trace_precise(previous)

        _unwrapped_selects[cls] = original
        cls.select = select


def _unwrap_selectors():
    for cls, original in _unwrapped_selects.items():
        cls.select = original
    _unwrapped_selects.clear()


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
