"""One thread spinning in pure Python (it holds the GIL), one in time.sleep,
and the main thread blocked on a lock. The truth file gives their native ids.

Readiness is signalled only once no thread but the spinner wants the GIL: the
sleeper and the main thread park first (their frames at their blocking lines
and the kernel reporting them asleep), then the spinner starts.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _truth import FOREVER, emit  # noqa: E402

go = threading.Event()
main_thread = threading.current_thread()


def kernel_state(thread):
    with open("/proc/self/task/%d/stat" % thread.native_id) as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def parked(thread, function):
    frame = sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_code.co_name == function and kernel_state(thread) == "S"


def start_spinner_when_parked():
    while not (parked(sleeper, "sleep_forever") and parked(main_thread, "<module>")):
        time.sleep(0.001)
    go.set()


def spin():
    go.wait()
    starter.join()
    emit()
    count = 0
    while True:
        count += 1


def sleep_forever():
    time.sleep(1e6)


sleeper = threading.Thread(target=sleep_forever, name="sleeper", daemon=True)
starter = threading.Thread(target=start_spinner_when_parked, name="starter", daemon=True)
sleeper.start()
threading.Thread(target=spin, name="busy", daemon=True).start()
starter.start()
FOREVER.acquire()
