"""Targets for bench/run_record_bench.py and bench/record_slowdown_bench.py.

  deep          one thread spinning in pure Python, 20 frames deep, forever
  work N        a fixed amount of pure-Python work (N rounds), then prints
                its own elapsed wall and CPU seconds on stdout
  service       20 threads, each cycling through differently shaped stacks
  units OUT N   fixed work units (recursion 20 frames deep, then arithmetic,
                2-4 ms each) in a loop, each unit's CLOCK_MONOTONIC start
                and end and thread CPU start and end (ns) kept in a
                preallocated array of N units; on SIGTERM (or when full) the
                units done are written to OUT as int64s and it exits
Readiness (deep, service, units) through VIGIL_READY_FD, as in the tests."""
import array
import os
import signal
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


def unit(depth, turns):
    if depth > 0:
        return unit(depth - 1, turns)
    total = 0
    for i in range(turns):
        total += i * i % 7
    return total


def _cpu_ns(function, *args):
    begin = time.thread_time_ns()
    function(*args)
    return time.thread_time_ns() - begin


def timed_units(out, capacity, unit_ms=4.0):
    depth = 20 - 3  # <module>, timed_units and unit's first call make up the rest
    # The fastest of many over half a second: this VM's host slows it down by up to 2x at times.
    calibrate = time.monotonic() + 0.5
    best = _cpu_ns(unit, depth, 20000)
    while time.monotonic() < calibrate:
        best = min(best, _cpu_ns(unit, depth, 20000))
    turns = int(20000 * unit_ms * 1e6 / best)
    warm = time.monotonic() + 1  # warm up with the final size (specialisation on 3.11+, caches, placement)
    while time.monotonic() < warm:
        unit(depth, turns)
    times = array.array("q", bytes(8 * 4 * capacity))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal_ready()
    done = 0
    while done < capacity and not stop:
        at = 4 * done
        times[at], times[at + 2] = time.monotonic_ns(), time.thread_time_ns()
        unit(depth, turns)
        times[at + 3], times[at + 1] = time.thread_time_ns(), time.monotonic_ns()
        done += 1
    with open(out, "wb") as file:
        times[:4 * done].tofile(file)


mode = sys.argv[1]
if mode == "deep":
    spin_at(20 - 2)  # <module> and spin_at's first call make up the rest
elif mode == "work":
    start, cpu = time.perf_counter(), time.process_time()
    work(int(sys.argv[2]))
    print("%.6f %.6f" % (time.perf_counter() - start, time.process_time() - cpu))
elif mode == "units":
    timed_units(sys.argv[2], int(sys.argv[3]))
elif mode == "service":
    for i in range(20):
        threading.Thread(target=serve, args=(i,), daemon=True).start()
    signal_ready()
    FOREVER.acquire()
