#!/usr/bin/env python3
"""The target's slowdown under `vigil record`, on every CPython 3.8+ found.

One long-lived target per interpreter (`record_target.py units`) runs a fixed
2-4 ms pure-Python work unit 20 frames deep in a loop and keeps each unit's
CLOCK_MONOTONIC start and end and its thread CPU time. On that same process
the driver alternates windows of W seconds: profiler off, `vigil record --rate
100`, off, `--rate 1000`, off, ... (--pairs times each rate, ending with off).
A unit counts for a window if it lies wholly inside it, less a margin at both
edges (a recording's window is vigil's lifetime, start-up and output
included). Per recording: median unit time in it / median unit time in the
two off windows around it - 1; reported: the median of those over the
recordings with a bootstrap 95% interval and their interquartile range; the
same with mean unit times (which keep the rare long units the medians drop,
e.g. the target waiting for a core) and with median thread CPU times. The
A/A row compares each off window with the off windows around it the same
way: the method's own resolution. Last, the median-unit comparisons of all
interpreters together. This VM's host at times runs everything
1.7x slower for seconds; a comparison whose two off windows differ by more
than 3% (such a switch next to it) is left out, by the off windows alone.

Usage: python3 bench/record_slowdown_bench.py [--pairs N] [--seconds W] [--margin S] [--python VERSION]
Prints Markdown for bench/RESULTS.md.
"""
import argparse
import array
import bisect
import os
import random
import signal
import statistics
import tempfile
import time

from run_record_bench import TARGET, record, start  # also puts tests/python on sys.path
from interpreters import SUPPORTED

RATES = (100, 1000)
BOOTSTRAP = 2000
STABLE = 0.03  # a comparison is kept if its two off windows' medians differ by at most this


def run_windows(pid, pairs, seconds):
    """[(rate, 0 when off; start ns; end ns; vigil's summary or None)]"""
    schedule = [window for _ in range(pairs) for rate in RATES for window in (0, rate)] + [0]
    windows = []
    for rate in schedule:
        begin = time.monotonic_ns()
        summary = None
        if rate:
            summary, _ = record(["--pid", pid, "--rate", rate, "--duration", seconds, "--format", "folded"])
        else:
            time.sleep(seconds)  # the off window is simply time passing
        windows.append((rate, begin, time.monotonic_ns(), summary))
    return windows


def cpu_ticks():
    """(busy, steal, total) ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return user + nice + system + irq + softirq, steal, user + nice + system + idle + iowait + irq + softirq + steal


def units_of(python, pairs, seconds):
    """Runs the target through the windows; returns (windows, unit starts,
    unit wall ns, unit CPU ns, the machine's (busy, steal) ticks by total)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "units")
        capacity = int((4 * pairs + 1) * (seconds + 0.5) * 1000) + 10000  # units take >= 1 ms
        target = start(python, TARGET, "units", out, str(capacity))
        try:
            before = cpu_ticks()
            windows = run_windows(target.pid, pairs, seconds)
            after = cpu_ticks()
            load = [(after[i] - before[i]) / (after[2] - before[2]) for i in (0, 1)]
            if target.poll() is not None:
                raise RuntimeError("the target stopped early (full?)")
        finally:
            target.send_signal(signal.SIGTERM)
            target.wait()
        times = array.array("q")
        with open(out, "rb") as file:
            times.frombytes(file.read())
    starts = times[0::4]
    walls = [end - begin for begin, end in zip(times[0::4], times[1::4])]
    cpus = [end - begin for begin, end in zip(times[2::4], times[3::4])]
    return windows, starts, walls, cpus, load


def inside(window, starts, walls, margin_ns):
    """Indices of the units lying wholly inside window, less the margins."""
    _, begin, end, _ = window
    first = bisect.bisect_left(starts, begin + margin_ns)
    last = bisect.bisect_left(starts, end - margin_ns)
    return [i for i in range(first, last) if starts[i] + walls[i] <= end - margin_ns]


def bootstrap_median(values, rng):
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP))
    return medians[int(0.025 * BOOTSTRAP)], medians[int(0.975 * BOOTSTRAP) - 1]


def summarise(ratios, rng):
    """'median [95% interval]' and the interquartile range, in %."""
    percent = [100 * r for r in ratios]
    if len(percent) < 2:
        return "%+.2f" % percent[0] if percent else "–", "–"
    low, high = bootstrap_median(percent, rng)
    q1, _, q3 = statistics.quantiles(percent, n=4)
    return "%+.2f [%+.2f, %+.2f]" % (statistics.median(percent), low, high), "%+.2f … %+.2f" % (q1, q3)


def report(python, windows, starts, walls, cpus, load, margin_ns):
    members = [inside(window, starts, walls, margin_ns) for window in windows]
    rng = random.Random(1)
    off_units = [i for window, found in zip(windows, members) if not window[0] for i in found]
    print("### %s\n" % python.id)
    print("Unit (profiler off, medians): %.2f ms wall, %.2f ms CPU; %d units in %d windows; machine busy %.0f%%, "
          "steal %.1f%% (of %d cores).\n" % (
              statistics.median(walls[i] for i in off_units) / 1e6, statistics.median(cpus[i] for i in off_units) / 1e6,
              sum(map(len, members)), len(windows), 100 * load[0], 100 * load[1], os.cpu_count()))
    print("| rate (Hz achieved) | recordings kept | units on / off | wall, median unit: slowdown % [95%] | its IQR % "
          "| wall, mean unit: % [95%] | CPU, median unit: % [95%] |")
    print("|---|---|---|---|---|---|---|")
    # Off windows sit at the even places; the one compared at k has its neighbours at k - 1 and k + 1
    # (recordings) or k - 2 and k + 2 (A/A).
    rows = [("%d (%.0f)" % (rate, statistics.median(w[3]["hz"] for w in windows if w[0] == rate)),
             [(k, k - 1, k + 1) for k, w in enumerate(windows) if w[0] == rate]) for rate in RATES]
    rows.append(("off (A/A)", [(k, k - 2, k + 2) for k in range(2, len(windows) - 2, 2)]))
    off_median = {k: statistics.median(walls[i] for i in found) for k, found in enumerate(members) if not windows[k][0]}
    pooled = {}
    for label, candidates in rows:
        triples = [(k, a, b) for k, a, b in candidates if abs(off_median[a] / off_median[b] - 1) <= STABLE]

        def ratios(measure, average):
            return [average([measure[i] for i in members[k]])
                    / average([measure[i] for i in members[a] + members[b]]) - 1 for k, a, b in triples]

        medians = ratios(walls, statistics.median)
        pooled[label if label.startswith("off") else label.split(" (")[0]] = (len(triples), len(candidates), medians)
        counted = "%d / %d" % (sum(len(members[k]) for k, _, _ in triples),
                               sum(len(members[a]) + len(members[b]) for _, a, b in triples))
        wall, wall_iqr = summarise(medians, rng)
        mean, _ = summarise(ratios(walls, statistics.fmean), rng)
        cpu, _ = summarise(ratios(cpus, statistics.median), rng)
        print("| %s | %d of %d | %s | %s | %s | %s | %s |" % (label, len(triples), len(candidates), counted, wall,
                                                             wall_iqr, mean, cpu))
    print(flush=True)
    return pooled


def report_pooled(results):
    """The median-unit comparisons of every interpreter together."""
    rng = random.Random(1)
    print("### All interpreters together\n")
    print("| rate | recordings kept | wall, median unit: slowdown % [95%] | its IQR % |")
    print("|---|---|---|---|")
    for label in results[0]:
        kept = sum(result[label][0] for result in results)
        total = sum(result[label][1] for result in results)
        print("| %s | %d of %d | %s | %s |" % ((label, kept, total)
                                             + summarise([r for result in results for r in result[label][2]], rng)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="recordings per rate")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of a window")
    parser.add_argument("--margin", type=float, default=0.05, help="seconds left out at both edges of a window")
    parser.add_argument("--python", help="only interpreters whose id starts with this")
    options = parser.parse_args()
    results = [report(python, *units_of(python, options.pairs, options.seconds), int(options.margin * 1e9))
               for python in SUPPORTED if python.id.startswith(options.python or "")]
    report_pooled(results)


if __name__ == "__main__":
    main()
