"""Code outside the traced package (tests/python/test_trace_capture.py): the
recorder must not see it, even when it calls back into the package."""
import threading

THREAD_NAMES = {}


def call_each(function, values):
    results = []
    for value in values:
        results.append(function(value))
    return results


def note_thread():
    THREAD_NAMES[threading.get_native_id()] = threading.current_thread().name
