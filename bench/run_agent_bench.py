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
  two servers side by side, the app with the agent and its WSGI middleware
  and the same app without, driven in alternate windows; requests per
  second and worker CPU per request, median of the paired changes with a
  bootstrap 95% interval (--flask-runs pairs, 0 skips).

Usage: python3 bench/run_agent_bench.py [--runs N] [--idle-seconds S] [--flask-runs N]
(--runs 0: Flask only; --flask-runs 0: no Flask)
Prints Markdown for bench/RESULTS.md.
"""
import argparse
import json
import random
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
from record_slowdown_bench import summarise  # noqa: E402

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
    """CPU time of gunicorn's workers, every thread of them, from the
    scheduler's nanosecond counters (/proc/PID/task/TID/schedstat)."""
    total = 0
    with open("/proc/%d/task/%d/children" % (master, master)) as children:
        for child in children.read().split():
            for task in os.listdir("/proc/%s/task" % child):
                with open("/proc/%s/task/%s/schedstat" % (child, task)) as stat:
                    total += int(stat.read().split()[0])
    return total / 1e9


WRK_REQUESTS = re.compile(r"(\d+) requests in")


def start_server(mode, directory):
    """gunicorn (one sync worker) serving bench/flask_bench_app.py in mode;
    returns (server, port) once it accepts connections."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR + ":" + FLASK_APP_DIR,
               VIGIL_BENCH_AGENT=mode, VIGIL_STATE_DIR=directory,
               VIGIL_STORE_DIR=os.path.join(directory, "store"))
    server = subprocess.Popen(
        ["/usr/bin/python3", "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:%d" % port,
         "--log-level", "warning", "flask_bench_app:app"], env=env)
    try:
        wait_for_port(port, server)
    except RuntimeError:
        server.kill()
        raise
    return server, port


def drive(server, port, seconds):
    """wrk for a window: (requests per second, worker CPU µs per request)."""
    cpu_before = worker_cpu_seconds(server.pid)
    out = subprocess.run(["wrk", "-t1", "-c4", "-d%ds" % seconds, "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, check=True).stdout
    cpu = worker_cpu_seconds(server.pid) - cpu_before
    requests = int(WRK_REQUESTS.search(out).group(1))
    return float(WRK_RATE.search(out).group(1)), 1e6 * cpu / requests


def flask_throughput(pairs, seconds):
    """Two servers run side by side, agent off and on; wrk drives them in
    alternate windows (order swapped every pair), each window paired with the
    other server's next to it: the host changes this VM's speed for seconds
    at a time, and pairs cancel that. Returns {mode: [(req/s, CPU µs per
    request), ...]}."""
    results = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as off_dir, tempfile.TemporaryDirectory() as on_dir:
        servers = {}
        try:
            for mode, directory in (("off", off_dir), ("on", on_dir)):
                servers[mode] = start_server(mode, directory)
                drive(*servers[mode], 1)  # warm: imports, first requests
            for pair in range(pairs):
                for mode in ("off", "on") if pair % 2 == 0 else ("on", "off"):
                    results[mode].append(drive(*servers[mode], seconds))
        finally:
            for server, _ in servers.values():
                server.send_signal(signal.SIGTERM)
                server.wait()
    return results


def flask_report(results, seconds):
    rng = random.Random(1)
    lines = ["Flask under gunicorn (1 sync worker each, /usr/bin/python3), wrk -t1 -c4, %d pairs of "
             "%d s windows:" % (len(results["off"]), seconds)]
    for index, (what, better) in enumerate((("requests per second", "higher"),
                                            ("worker CPU per request (µs)", "lower"))):
        off = [window[index] for window in results["off"]]
        on = [window[index] for window in results["on"]]
        changes = [b / a - 1 for a, b in zip(off, on)]
        median, quartiles = summarise(changes, rng)
        lines.append("- %s: off %.1f, on %.1f (medians); paired change with the agent on %s%%, "
                     "quartiles %s%% (%s is better)"
                     % (what, statistics.median(off), statistics.median(on), median, quartiles, better))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--count", type=int, default=300000)
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--profiled-requests", type=int, default=40)
    parser.add_argument("--flask-runs", type=int, default=30)
    parser.add_argument("--flask-seconds", type=int, default=2)
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
        results = flask_throughput(options.flask_runs, options.flask_seconds)
        print("\n" + flask_report(results, options.flask_seconds))


if __name__ == "__main__":
    main()
