#!/usr/bin/env python3
"""Benchmarks of `vigil record` on every CPython 3.8+ found on the machine.

- per-sample cost: vigil's own CPU time (user + system, from wait4) divided by
  its samples, on a single thread spinning 20 frames deep; a 0.05 s recording
  is subtracted to remove start-up and output costs;
- the highest rate vigil achieves on that target (asked for 100 kHz);
- the target's slowdown: a fixed amount of work timed by the target itself,
  with no profiler, at 100 Hz and at 1 kHz, interleaved, medians;
- invalid (torn) samples on tests/targets/churn.py, which never holds still;
- memory: vigil's RSS over a long recording of a 20-thread service.

Usage: python3 bench/run_record_bench.py [--runs N] [--memory-seconds S]
Prints Markdown for bench/RESULTS.md.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from interpreters import SUPPORTED  # noqa: E402

VIGIL = os.path.join(ROOT, "build", "src", "cli", "vigil")
SAMPLE = os.path.join(ROOT, "build", "bench", "vigil_bench_sample")
TARGET = os.path.join(ROOT, "bench", "record_target.py")
CHURN = os.path.join(ROOT, "tests", "targets", "churn.py")
SUMMARY = re.compile(r"(\d+) samples in ([\d.]+) s, ([\d.]+) Hz achieved .*; ([\d.]+)% invalid")


def start(python, *args):
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, VIGIL_READY_FD=str(write_fd))
    process = subprocess.Popen([python.path, *args], env=env, pass_fds=(write_fd,))
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        pipe.readline()
    return process


def record(args, stdout=subprocess.DEVNULL):
    """Runs vigil record; returns (summary numbers, cpu seconds, stdout)."""
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen([VIGIL, "record", "-o", os.path.join(tmp, "p.folded"), *map(str, args)],
                                   stdout=stdout, stderr=subprocess.PIPE, text=True)
        out, err = process.communicate()
    match = SUMMARY.search(err)
    if not match:
        raise RuntimeError(err)
    samples, seconds, achieved, invalid = match.groups()
    return {"samples": int(samples), "seconds": float(seconds), "hz": float(achieved), "invalid": float(invalid)}, out


def cpu_of(args):
    """Runs vigil record and returns (summary, its CPU seconds)."""
    before = os.times()
    summary, _ = record(args)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return summary, cpu


def per_sample_cost(python, seconds):
    """(work per round in µs from vigil_bench_sample, timer wakeup CPU in µs,
    vigil record's CPU per sample at 1 kHz in µs, invalid %, highest rate)."""
    target = start(python, TARGET, "deep")
    try:
        work = json.loads(subprocess.check_output([SAMPLE, str(target.pid), "31", "2000"]))
        long_run, long_cpu = cpu_of(["--pid", target.pid, "--rate", 1000, "--duration", seconds])
        short_run, short_cpu = cpu_of(["--pid", target.pid, "--rate", 1000, "--duration", 0.05])
        fastest, _ = cpu_of(["--pid", target.pid, "--rate", 100000, "--duration", 3])
    finally:
        target.kill()
        target.wait()
    cost = (long_cpu - short_cpu) / max(1, long_run["samples"] - short_run["samples"])
    return work["round_cpu_us"], work["wakeup_cpu_us"], cost * 1e6, long_run["invalid"], fastest["hz"]


def slowdown(python, runs, rounds):
    """The target's own wall and CPU time for fixed work, alone and under
    vigil at 100 Hz and 1 kHz, interleaved; returns the baseline medians and
    the slowdowns in % of both."""
    times = {mode: {"wall": [], "cpu": []} for mode in ("none", "100", "1000")}
    for _ in range(runs):
        for mode, measured in times.items():
            if mode == "none":
                out = subprocess.run([python.path, TARGET, "work", str(rounds)], capture_output=True, text=True,
                                     check=True).stdout
            else:
                _, out = record(["--rate", mode, "--", python.path, TARGET, "work", rounds], stdout=subprocess.PIPE)
            wall, cpu = out.strip().splitlines()[-1].split()
            measured["wall"].append(float(wall))
            measured["cpu"].append(float(cpu))
    base = {kind: statistics.median(times["none"][kind]) for kind in ("wall", "cpu")}
    slow = {(mode, kind): 100.0 * (statistics.median(times[mode][kind]) / base[kind] - 1)
            for mode in ("100", "1000") for kind in ("wall", "cpu")}
    return base, slow


def invalid_on_churn(python):
    target = start(python, CHURN)
    try:
        summary, _ = record(["--pid", target.pid, "--rate", 1000, "--duration", 5, "--idle"])
    finally:
        target.kill()
        target.wait()
    return summary


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


def memory(python, seconds):
    target = start(python, TARGET, "service")
    points = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            vigil = subprocess.Popen([VIGIL, "record", "--pid", str(target.pid), "--rate", "2000", "--idle",
                                      "--duration", str(seconds), "-o", os.path.join(tmp, "p.html")],
                                     stderr=subprocess.PIPE, text=True)
            step = seconds / 6
            for i in range(1, 6):
                time.sleep(step)  # sampling RSS at fixed times is the measurement itself
                points.append((round(i * step), rss_kb(vigil.pid)))
            _, err = vigil.communicate()
    finally:
        target.kill()
        target.wait()
    samples = int(SUMMARY.search(err).group(1))
    return points, samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--work-rounds", type=int, default=60000)
    parser.add_argument("--cost-seconds", type=float, default=10)
    parser.add_argument("--memory-seconds", type=float, default=120)
    args = parser.parse_args()
    print("| Python | work per sample (µs) | timer wakeup alone (µs CPU) | `vigil record` CPU per sample at 1 kHz (µs) "
          "| highest rate (Hz) | work alone (s wall) | slowdown at 100 Hz, wall / CPU (%) "
          "| at 1 kHz, wall / CPU (%) | invalid, spinning (%) | invalid, churn.py (%) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for python in SUPPORTED:
        work, wakeup, cost, invalid, fastest = per_sample_cost(python, args.cost_seconds)
        base, slow = slowdown(python, args.runs, args.work_rounds)
        churn = invalid_on_churn(python)
        print("| %s | %.2f | %.2f | %.2f | %.0f | %.2f | %+.2f / %+.2f | %+.2f / %+.2f | %.2f | %.2f |" % (
            python.id, work, wakeup, cost, fastest, base["wall"], slow[("100", "wall")], slow[("100", "cpu")],
            slow[("1000", "wall")], slow[("1000", "cpu")], invalid, churn["invalid"]), flush=True)
    python = [p for p in SUPPORTED if p.version[:2] == (3, 11)][-1]
    points, samples = memory(python, args.memory_seconds)
    print()
    print("Memory of `vigil record --idle --rate 2000` on a 20-thread service (%s), RSS by elapsed seconds: %s; "
          "%d thread samples = %.1f hours of 20 threads at 100 Hz" % (
              python.id, ", ".join("%d s: %.1f MB" % (t, kb / 1024) for t, kb in points), samples,
              samples / (100 * 20 * 3600)))


if __name__ == "__main__":
    main()
