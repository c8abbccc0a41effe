"""Benchmark target: 20 threads, each parked with exactly 20 Python frames
(17 of recursion under threading's 3 bootstrap frames). Readiness through
VIGIL_READY_FD, as in the tests."""
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "targets"))
from _truth import FOREVER, signal_ready  # noqa: E402

THREADS = 20
DEPTH = 20
parked = threading.Semaphore(0)


def descend(remaining):
    if remaining == 0:
        parked.release()
        FOREVER.acquire()
    descend(remaining - 1)


def run():
    # Thread._bootstrap, _bootstrap_inner, run, then this frame and the recursion.
    descend(DEPTH - 5)


for i in range(THREADS):
    threading.Thread(target=run, name="bench-%d" % i, daemon=True).start()
for _ in range(THREADS):
    parked.acquire()
signal_ready()
FOREVER.acquire()
