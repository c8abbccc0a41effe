#!/usr/bin/env python3
"""Benchmarks of the execution recorder's capture side (vigil.trace) on every
CPython 3.8+ found.

- ns per recorded event: a tight pure-Python loop (two line events per turn)
  and a call-heavy one (per turn three lines, a call and a return), in a
  selected package, recorded into a trace directory (the real writer: its
  thread compresses and writes meanwhile), minus the same code not
  recorded, divided by the events written;
- the slowdown of code outside the selection while a recording runs: the
  same two loops in a module that is not selected, recording on against
  off;
- bytes on disk per event on a realistic workload: the standard library's
  difflib, email, textwrap, ipaddress, fractions and statistics at work
  (varied code, not a two-line loop), all recorded.

Each measurement runs in a fresh process (the best of a few repetitions
there); the modes are interleaved over --runs rounds and the medians kept.

Usage: python3 bench/trace_capture_bench.py [--runs N] [--tight N] [--calls N]
Prints Markdown for bench/RESULTS.md.
"""
import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
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
    """Times one workload; prints {"ns": best time, "events": per repetition}."""
    import vigil.trace
    function = load("benchpkg.hot" if selected else "benchcold")[workload]
    function(count // 10)  # warm up (specialisation on 3.11+)
    directory = tempfile.mkdtemp(prefix="vigil-bench-")
    if mode == "on":
        vigil.trace.start(packages=["benchpkg"], dir=directory, max_bytes=0)
    best = None
    for _ in range(REPETITIONS):
        begin = time.perf_counter_ns()
        function(count)
        elapsed = time.perf_counter_ns() - begin
        best = elapsed if best is None else min(best, elapsed)
    events = 0
    if mode == "on":
        vigil.trace.flush()
        events = vigil.trace.stats()["events"]
        vigil.trace.stop()
    shutil.rmtree(directory)
    print(json.dumps({"ns": best, "events": events // REPETITIONS}))


REALISTIC = ("difflib", "email", "textwrap", "ipaddress", "fractions", "statistics")


def realistic_work():
    import difflib
    import email.message
    import email.parser
    import fractions
    import ipaddress
    import statistics
    import textwrap
    words = ("the quick brown fox jumps over the lazy dog " * 40).split()
    for turn in range(30):
        before = [" ".join(words[i:i + 7]) for i in range(0, len(words), 7)]
        after = [line.replace("fox", "cat%d" % turn) if i % 3 else line
                 for i, line in enumerate(before)]
        list(difflib.unified_diff(before, after, lineterm=""))
        message = email.message.EmailMessage()
        message["Subject"] = "report %d" % turn
        message["To"] = "ops@example.com"
        message.set_content(textwrap.fill(" ".join(words[:80 + turn]), 60))
        email.parser.Parser().parsestr(message.as_string())
        network = ipaddress.ip_network("10.%d.0.0/22" % turn)
        sum(1 for _host in network.hosts())
        statistics.median(fractions.Fraction(i, turn + 1) for i in range(200))


def realistic_child():
    """Records realistic_work(); prints {"events", "bytes"} of its trace."""
    import vigil.trace
    directory = tempfile.mkdtemp(prefix="vigil-bench-")
    where = vigil.trace.start(packages=list(REALISTIC), dir=directory, max_bytes=0)
    realistic_work()
    vigil.trace.stop()
    size = sum(os.path.getsize(os.path.join(where, name)) for name in os.listdir(where)
               if name.startswith("events-"))
    from vigil import _vigil
    events, _error = _vigil.trace_read(where)
    shutil.rmtree(directory)
    print(json.dumps({"events": len(events), "bytes": size}))


def bytes_per_event(python):
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR)
    out = subprocess.run([python.path, os.path.abspath(__file__), "--realistic"],
                         capture_output=True, text=True, env=env, check=True).stdout
    result = json.loads(out)
    return result["bytes"] / result["events"], result["events"]


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
    if len(sys.argv) > 1 and sys.argv[1] == "--realistic":
        realistic_child()
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
          "| unselected while recording: tight, call-heavy (% slower) "
          "| realistic: bytes on disk per event (events) |")
    print("|---|---|---|---|---|---|")
    for python in SUPPORTED:
        tight = recorded_cost(python, "tight", options.runs, options.tight)
        calls = recorded_cost(python, "calls", options.runs, options.calls)
        slow_tight = unselected_slowdown(python, "tight", options.runs, options.tight)
        slow_calls = unselected_slowdown(python, "calls", options.runs, options.calls)
        size, events = bytes_per_event(python)
        print("| %s | %.1f | %.1f | %.1f, %.1f | %+.1f, %+.1f | %.3f (%d) |"
              % (python.id, tight[0], calls[0], tight[2], calls[2], slow_tight, slow_calls,
                 size, events), flush=True)


if __name__ == "__main__":
    main()
