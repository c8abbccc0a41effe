#!/usr/bin/env python3
"""Benchmarks of the execution recorder's capture side (vigil.trace) on every
CPython 3.8+ found.

- ns per recorded event: a tight pure-Python loop (two line events per turn)
  and a call-heavy one (per turn three lines, a call and a return), in a
  selected package, recorded into a sink that counts the events and keeps
  none, minus the same code not recorded, divided by the events counted;
- the slowdown of code outside the selection while a recording runs: the
  same two loops in a module that is not selected, recording on against
  off.

Each measurement runs in a fresh process (the best of a few repetitions
there); the modes are interleaved over --runs rounds and the medians kept.

Usage: python3 bench/trace_capture_bench.py [--runs N] [--tight N] [--calls N]
Prints Markdown for bench/RESULTS.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(ROOT, "build", "python")

WORKLOADS = '''
def tight(count):
    total = 0
    for index in range(count):
        total += index
    return total


def leaf(value):
    return value + 1


def calls(count):
    total = 0
    for index in range(count):
        total += leaf(index)
    return total
'''
REPETITIONS = 5


def load(module_name):
    """The workloads as a module named module_name (the selection goes by name)."""
    namespace = {"__name__": module_name}
    exec(compile(WORKLOADS, "/bench/%s.py" % module_name.replace(".", "/"), "exec"), namespace)
    return namespace


def child(workload, selected, mode, count):
    """Times one workload; prints {"ns": best time, "events": ..., "lines": ...}."""
    import vigil.trace
    from vigil import _vigil
    function = load("benchpkg.hot" if selected else "benchcold")[workload]
    function(count // 10)  # warm up (specialisation on 3.11+)
    if mode == "on":
        vigil.trace.start(packages=["benchpkg"], _sink="count")
    best = None
    for _ in range(REPETITIONS):
        begin = time.perf_counter_ns()
        function(count)
        elapsed = time.perf_counter_ns() - begin
        best = elapsed if best is None else min(best, elapsed)
    counts = {}
    if mode == "on":
        vigil.trace.stop()
        counts = _vigil.trace_counts()
    events = sum(value for key, value in counts.items() if key != "dropped")
    print(json.dumps({"ns": best, "events": events // REPETITIONS,
                      "lines": counts.get("line", 0) // REPETITIONS}))


def measure(python, workload, selected, mode, count):
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR)
    out = subprocess.run([python.path, os.path.abspath(__file__), "--child", workload,
                          "selected" if selected else "unselected", mode, str(count)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out)


def recorded_cost(python, workload, runs, count):
    """(ns per recorded event, events per run, untraced ns per turn) of a selected workload."""
    times = {"off": [], "on": []}
    events = 0
    for _ in range(runs):
        for mode in times:
            result = measure(python, workload, True, mode, count)
            times[mode].append(result["ns"])
            events = result["events"] or events
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    return (on - off) / events, events, off / count


def unselected_slowdown(python, workload, runs, count):
    """% longer for an unselected workload while a recording runs."""
    times = {"off": [], "on": []}
    for _ in range(runs):
        for mode in times:
            times[mode].append(measure(python, workload, False, mode, count)["ns"])
    return 100 * (statistics.median(times["on"]) / statistics.median(times["off"]) - 1)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        workload, selection, mode, count = sys.argv[2:6]
        child(workload, selection == "selected", mode, int(count))
        return
    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    from interpreters import SUPPORTED

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tight", type=int, default=1_000_000, help="turns of the tight loop")
    parser.add_argument("--calls", type=int, default=300_000, help="turns of the call-heavy loop")
    options = parser.parse_args()

    print("| Python | tight loop: ns per event | call-heavy: ns per event "
          "| untraced ns per turn (tight, call-heavy) "
          "| unselected while recording: tight, call-heavy (% slower) |")
    print("|---|---|---|---|---|")
    for python in SUPPORTED:
        tight = recorded_cost(python, "tight", options.runs, options.tight)
        calls = recorded_cost(python, "calls", options.runs, options.calls)
        slow_tight = unselected_slowdown(python, "tight", options.runs, options.tight)
        slow_calls = unselected_slowdown(python, "calls", options.runs, options.calls)
        print("| %s | %.1f | %.1f | %.1f, %.1f | %+.1f, %+.1f |"
              % (python.id, tight[0], calls[0], tight[2], calls[2], slow_tight, slow_calls),
              flush=True)


if __name__ == "__main__":
    main()
