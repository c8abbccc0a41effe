#!/usr/bin/env python3
"""The sampler's work per sample on every CPython 3.8+ found, interleaved.

For each repetition and each interpreter in turn: a target spinning 20 frames
deep (bench/record_target.py deep) is sampled by build/bench/vigil_bench_sample
(31 batches of 2000 rounds, each batch after a batch of single 8-byte reads of
the target: the floor one system call costs on this machine at that moment).
The same is done on a 20-thread service (`service`, every thread walked with
--idle), per thread sampled. Medians over the repetitions.

Usage: python3 bench/sample_cost_bench.py [--repeat N]
Prints Markdown for bench/RESULTS.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from interpreters import SUPPORTED  # noqa: E402
from run_record_bench import SAMPLE, TARGET, start  # noqa: E402

READV_PAGES = os.path.join(ROOT, "build", "bench", "vigil_bench_readv_pages")

THREADS_IN_SERVICE = 21  # 20 workers and the main thread


def measure(python, mode, extra):
    target = start(python, TARGET, mode)
    try:
        out = subprocess.check_output([SAMPLE, str(target.pid), "31", "2000", *extra])
    finally:
        target.kill()
        target.wait()
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = {python.id: {"deep": [], "service": []} for python in SUPPORTED}
    for _ in range(args.repeat):
        for python in SUPPORTED:
            runs[python.id]["deep"].append(measure(python, "deep", []))
            runs[python.id]["service"].append(measure(python, "service", ["--idle"]))
    print("| Python | work per sample, 20 frames (µs) | one 8-byte read, same runs (µs) | ratio "
          "| per thread, 20-thread service (µs) | invalid (%) |")
    print("|---|---|---|---|---|---|")
    for python in SUPPORTED:
        deep, service = runs[python.id]["deep"], runs[python.id]["service"]
        work = statistics.median(r["round_cpu_us"] for r in deep)
        floor = statistics.median(r["read_8_bytes_us"] for r in deep)
        ratio = statistics.median(r["round_cpu_us"] / r["read_8_bytes_us"] for r in deep)
        per_thread = statistics.median(r["round_cpu_us"] / THREADS_IN_SERVICE for r in service)
        samples = sum(r["samples"] + r["invalid"] for r in deep + service)
        invalid = 100.0 * sum(r["invalid"] for r in deep + service) / max(1, samples)
        print("| %s | %.2f | %.2f | %.2f | %.2f | %.3f |" % (python.id, work, floor, ratio, per_thread, invalid),
              flush=True)
    print("\nThe kernel alone, right after:\n")
    print(subprocess.check_output([READV_PAGES], text=True), end="")


if __name__ == "__main__":
    main()
