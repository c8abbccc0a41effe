"""Runs traced_pkg.flow under a recorder and writes what it recorded, for
tests/python/test_trace_capture.py.

    trace_program.py RECORDER SELECTION OUTPUT

RECORDER is "vigil" (vigil.trace, its trace read back from its files
with vigil._vigil.trace_read, into OUTPUT.trace/) or "reference" (a
pure-Python sys.settrace / threading.settrace function restricted to the
same code); SELECTION is "packages" or "paths" (how vigil chooses the code).
OUTPUT gets JSON: the events as [thread, task, kind, file, line, time], the
names of the threads by native id, and what the program computed.

The reference emits, for each frame of selected code (a module whose
__name__ is traced_pkg or under it):
  call       its first event, at frame.f_lineno (also when a generator or
             coroutine resumes, as sys.settrace does);
  line       each settrace "line" event, at frame.f_lineno;
  exception  each settrace "exception" event, at frame.f_lineno;
  return     each settrace "return" event (also a yield, and a frame left by
             an exception), with no line.
The task is asyncio.current_task() (0 outside a running loop).
"""
import asyncio
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import untraced_helper  # noqa: E402

PACKAGE = "traced_pkg"
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), PACKAGE)


def selected(frame):
    name = frame.f_globals.get("__name__", "")
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def current_task():
    loop = asyncio._get_running_loop()
    task = asyncio.current_task(loop) if loop is not None else None
    return id(task) if task is not None else 0


class Reference:
    """sys.settrace in every thread, recording what the docstring says."""

    def __init__(self):
        self.events = []

    def record(self, frame, kind, line):
        self.events.append((threading.get_native_id(), current_task(), kind,
                            frame.f_code.co_filename, line, None))

    def local(self, frame, event, arg):
        if event == "line":
            self.record(frame, "line", frame.f_lineno)
        elif event == "exception":
            self.record(frame, "exception", frame.f_lineno)
        elif event == "return":
            self.record(frame, "return", None)
        return self.local

    def call(self, frame, event, arg):
        if event != "call" or not selected(frame):
            return None
        self.record(frame, "call", frame.f_lineno)
        return self.local

    def start(self):
        threading.settrace(self.call)
        sys.settrace(self.call)

    def stop(self):
        sys.settrace(None)
        threading.settrace(None)
        return self.events


def read_trace(directory):
    """A trace's events as the reference's: [thread, task, kind, file, line,
    time], line None for a return, time None unless the event was timed."""
    from vigil import _vigil
    events, error = _vigil.trace_read(directory)
    assert error is None, error
    return [[thread, task, kind, file, None if kind == "return" else line,
             time if precise else None]
            for thread, task, kind, file, _qualname, line, _depth, time, precise in events]


class Vigil:
    def __init__(self, selection, output):
        self.selection = selection
        self.base = output + ".trace"

    def start(self):
        import vigil.trace
        if self.selection == "packages":
            self.directory = vigil.trace.start(packages=[PACKAGE], dir=self.base)
        else:
            self.directory = vigil.trace.start(paths=[PACKAGE_DIR], dir=self.base)

    def stop(self):
        import vigil.trace
        vigil.trace.stop()
        return read_trace(self.directory)


def main():
    recorder_name, selection, output = sys.argv[1:4]
    untraced_helper.note_thread()
    threading.excepthook = lambda args: None  # the thread's uncaught error is expected
    from traced_pkg import flow
    recorder = Reference() if recorder_name == "reference" else Vigil(selection, output)
    recorder.start()
    outcome = flow.run()
    events = recorder.stop()
    with open(output, "w", encoding="utf-8") as out:
        json.dump({"events": events, "threads": untraced_helper.THREAD_NAMES,
                   "outcome": repr(outcome)}, out)


if __name__ == "__main__":
    main()
