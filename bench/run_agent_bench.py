#!/usr/bin/env python3
"""Benchmarks of the in-process agent on every CPython 3.8+ found.

- request begin + end: `with vigil.request("sale.order.confirm",
  user="admin", db_pid=1234): pass` in a loop, minus the same empty loop, per
  request; agent started (the request goes into the shared-memory table) and
  not started (ids and context only); interleaved runs, medians;
- the watchdog's own CPU while the application idles: the whole process's
  CPU time (scheduler ns of every thread) over an idle period with the agent
  on, minus the same with the agent off, as a share of one core;
- a request profiled at 100 Hz by a `profile` rule: the median duration of
  a fixed pure-Python request (about 20-40 ms) with the rule matching and
  not, interleaved runs, medians of medians;
- Flask under gunicorn (/usr/bin/python3, Debian's packages) driven by wrk:
  requests per second with the agent and its WSGI middleware on, against
  the same app without, interleaved runs, medians (--flask-runs 0 skips).

Usage: python3 bench/run_agent_bench.py [--runs N] [--idle-seconds S] [--flask-runs N]
(--runs 0: Flask only; --flask-runs 0: no Flask)
Prints Markdown for bench/RESULTS.md.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from interpreters import SUPPORTED  # noqa: E402

PACKAGE_DIR = os.path.join(ROOT, "build", "python")
TARGET = os.path.join(ROOT, "bench", "agent_target.py")
FLASK_APP_DIR = os.path.join(ROOT, "bench")


def run_target(python, *args):
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR)
    out = subprocess.run([python.path, TARGET, *map(str, args)], capture_output=True, text=True,
                         env=env, check=True).stdout
    return json.loads(out)


def request_costs(python, runs, count):
    """ns per begin + end, agent on and off, interleaved; medians."""
    costs = {"on": [], "off": []}
    for _ in range(runs):
        for mode in costs:
            result = run_target(python, "requests", count, mode)
            costs[mode].append(result["request"] - result["empty"])
    return {mode: statistics.median(values) for mode, values in costs.items()}


def idle_share(python, runs, seconds):
    """The agent's CPU while idle, in % of one core; median of runs."""
    shares = []
    for _ in range(runs):
        on = run_target(python, "idle", seconds, "on")
        off = run_target(python, "idle", seconds, "off")
        shares.append(100 * (on["cpu"] - off["cpu"]) / seconds)
    return statistics.median(shares)


def profiling_cost(python, runs, count):
    """% added to a request's duration when a rule profiles it at 100 Hz."""
    medians = {"on": [], "off": []}
    for _ in range(runs):
        for mode in medians:
            medians[mode].append(run_target(python, "profiled", count, mode)["median"])
    return 100 * (statistics.median(medians["on"]) / statistics.median(medians["off"]) - 1)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("gunicorn did not come up")


WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")


def worker_cpu_seconds(master):
    """CPU time (user + system) of gunicorn's workers, from /proc."""
    total = 0
    with open("/proc/%d/task/%d/children" % (master, master)) as children:
        for child in children.read().split():
            with open("/proc/%s/stat" % child) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


WRK_REQUESTS = re.compile(r"(\d+) requests in")


def flask_run(mode, seconds):
    """wrk against gunicorn serving bench/flask_bench_app.py: (requests per
    second, worker CPU µs per request)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        env = dict(os.environ, PYTHONPATH=PACKAGE_DIR + ":" + FLASK_APP_DIR,
                   VIGIL_BENCH_AGENT=mode, VIGIL_STATE_DIR=directory,
                   VIGIL_STORE_DIR=os.path.join(directory, "store"))
        server = subprocess.Popen(
            ["/usr/bin/python3", "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:%d" % port,
             "--log-level", "warning", "flask_bench_app:app"], env=env)
        try:
            wait_for_port(port, server)
            cpu_before = worker_cpu_seconds(server.pid)
            out = subprocess.run(["wrk", "-t1", "-c4", "-d%ds" % seconds,
                                  "http://127.0.0.1:%d/" % port],
                                 capture_output=True, text=True, check=True).stdout
            cpu = worker_cpu_seconds(server.pid) - cpu_before
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()
    requests = int(WRK_REQUESTS.search(out).group(1))
    return float(WRK_RATE.search(out).group(1)), 1e6 * cpu / requests


def flask_throughput(runs, seconds):
    """Medians of interleaved runs: {mode: (req/s, worker CPU µs per request)},
    and the paired changes in % (each run with the agent against the run
    without it just before: the host changes this VM's speed for seconds at
    a time, which pairs cancel) as (median, quartiles) for req/s and CPU."""
    results = {"off": [], "on": []}
    for _ in range(runs):
        for mode in results:
            results[mode].append(flask_run(mode, seconds))
    medians = {mode: (statistics.median(r for r, _ in values), statistics.median(c for _, c in values))
               for mode, values in results.items()}
    pairs = list(zip(results["off"], results["on"]))
    paired = [summary([100 * (on[k] / off[k] - 1) for off, on in pairs]) for k in (0, 1)]
    return medians, paired


def summary(changes):
    """(median, first quartile, third quartile)."""
    quartiles = statistics.quantiles(changes, n=4) if len(changes) > 1 else changes * 3
    return statistics.median(changes), quartiles[0], quartiles[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--count", type=int, default=300000)
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--profiled-requests", type=int, default=40)
    parser.add_argument("--flask-runs", type=int, default=7)
    parser.add_argument("--flask-seconds", type=int, default=5)
    options = parser.parse_args()

    print("| Python | begin + end, agent on (µs) | agent not started (µs) | watchdog idle CPU (% of a core) "
          "| request profiled at 100 Hz (% longer) |")
    print("|---|---|---|---|---|")
    for python in SUPPORTED if options.runs else ():
        costs = request_costs(python, options.runs, options.count)
        idle = idle_share(python, max(3, options.runs // 2), options.idle_seconds)
        profiling = profiling_cost(python, options.runs, options.profiled_requests)
        print("| %s | %.2f | %.2f | %.3f | %+.2f |"
              % (python.id, costs["on"] / 1000, costs["off"] / 1000, idle, profiling), flush=True)
    if options.flask_runs:
        medians, (rate_pairs, cpu_pairs) = flask_throughput(options.flask_runs, options.flask_seconds)
        (rate_off, cpu_off), (rate_on, cpu_on) = medians["off"], medians["on"]
        print("\nFlask under gunicorn (1 sync worker, /usr/bin/python3), wrk -t1 -c4 -d%ds, %d "
              "interleaved runs, medians: agent off %.0f req/s, agent on %.0f req/s (%+.2f%%); "
              "worker CPU per request %.1f µs off, %.1f µs on (%+.2f%%)"
              % (options.flask_seconds, options.flask_runs, rate_off, rate_on,
                 100 * (rate_on / rate_off - 1), cpu_off, cpu_on, 100 * (cpu_on / cpu_off - 1)))
        print("Paired (each run on against the run off just before it): req/s %+.2f%% (quartiles "
              "%+.2f%% to %+.2f%%), worker CPU per request %+.2f%% (quartiles %+.2f%% to %+.2f%%)"
              % (*rate_pairs, *cpu_pairs))


if __name__ == "__main__":
    main()
