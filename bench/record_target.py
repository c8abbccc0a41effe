"""Targets for bench/run_record_bench.py.

  deep          one thread spinning in pure Python, 20 frames deep, forever
  work N        a fixed amount of pure-Python work (N rounds), then prints
                its own elapsed wall and CPU seconds on stdout
  service       20 threads, each cycling through differently shaped stacks
Readiness (deep, service) through VIGIL_READY_FD, as in the tests."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "targets"))
from _truth import FOREVER, signal_ready  # noqa: E402


def spin_at(depth):
    if depth > 0:
        return spin_at(depth - 1)
    signal_ready()
    total = 0
    while True:
        total += 1


def work(rounds):
    total = 0
    for i in range(rounds):
        total += sum(j * j for j in range(100))
    return total


def shaped(kind, depth):
    if depth:
        return shaped(kind, depth - 1)
    return sum(range(200 * (kind + 1)))


def serve(index):
    while True:
        for kind in range(5):
            shaped(kind, (index + kind * 3) % 12)


mode = sys.argv[1]
if mode == "deep":
    spin_at(20 - 2)  # <module> and spin_at's first call make up the rest
elif mode == "work":
    start, cpu = time.perf_counter(), time.process_time()
    work(int(sys.argv[2]))
    print("%.6f %.6f" % (time.perf_counter() - start, time.process_time() - cpu))
elif mode == "service":
    for i in range(20):
        threading.Thread(target=serve, args=(i,), daemon=True).start()
    signal_ready()
    FOREVER.acquire()
