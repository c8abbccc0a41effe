#!/usr/bin/env python3
"""Benchmarks of `vigil dump` on every CPython 3.8+ found on the machine.

For each interpreter it starts bench_target.py (20 threads, each parked 20
frames deep) and measures:
- one walk of a 20-frame stack with warm caches (vigil_bench_walk: medians of
  batches, interleaved with a baseline of one 8-byte read of the target);
- one whole `vigil dump PID` (process start to exit), interleaved with
  `vigil --version` as the baseline cost of starting the binary at all.

Usage: python3 bench/run_dump_bench.py [--runs N]   (after scripts/build.sh)
Prints a Markdown table for bench/RESULTS.md.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from interpreters import SUPPORTED  # noqa: E402

VIGIL = os.path.join(ROOT, "build", "src", "cli", "vigil")
WALK = os.path.join(ROOT, "build", "bench", "vigil_bench_walk")


def start_target(python):
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, VIGIL_READY_FD=str(write_fd))
    process = subprocess.Popen(
        [python.path, os.path.join(ROOT, "bench", "bench_target.py")], env=env, pass_fds=(write_fd,)
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        pipe.readline()
    return process


def elapsed_ms(command):
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def bench(python, runs):
    target = start_target(python)
    try:
        walk = json.loads(subprocess.check_output([WALK, str(target.pid), "51", "2000"]))
        dumps, baselines = [], []
        for _ in range(runs):
            baselines.append(elapsed_ms([VIGIL, "--version"]))
            dumps.append(elapsed_ms([VIGIL, "dump", str(target.pid)]))
        return walk, statistics.median(dumps), statistics.median(baselines)
    finally:
        target.kill()
        target.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=101)
    args = parser.parse_args()
    print("Machine: %s, %d cores, %s; %s" % (platform.node(), os.cpu_count(), platform.machine(),
                                              time.strftime("%Y-%m-%d")))
    print()
    print("| Python | walk of 20 frames (µs) | walk + recheck (µs) | one 8-byte read (µs) | walk / read "
          "| whole `vigil dump`, 21 threads (ms) | `vigil --version` (ms) |")
    print("|---|---|---|---|---|---|---|")
    for python in SUPPORTED:
        walk, dump, baseline = bench(python, args.runs)
        print("| %s | %.2f | %.2f | %.2f | %.1f | %.2f | %.2f |" % (
            python.id, walk["walk_us"], walk["walk_checked_us"], walk["read_8_bytes_us"],
            walk["walk_over_read"], dump, baseline))


if __name__ == "__main__":
    main()
