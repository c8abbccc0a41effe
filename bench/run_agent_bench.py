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
  the app with the agent and its WSGI middleware and the same app without,
  two servers pinned to the same CPU and driven at the same time by two wrk
  pinned to the other; per window, each worker's CPU per request (scheduler
  ns of all its threads over wrk's request count) and requests per second;
  fresh servers for each of --flask-pairs pairs, the median of each pair's
  windows' changes, and the median and range of those; an A/A control (both
  without vigil). --flask-cases splits the cost.
  With both workers always runnable on one CPU, each gets half of it: the
  change in CPU per request is the change in throughput a worker owning a
  CPU would see, and requests per second follows it with the noise of how
  the scheduler shared the CPU in that window.

Usage: python3 bench/run_agent_bench.py [--runs N] [--idle-seconds S]
                                        [--flask-pairs N] [--flask-windows N] [--flask-cases K,K|all]
                                        [--flask-page hello|table]
(--runs 0: Flask only; --flask-pairs 0: no Flask)
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


def start_server(mode, directory, extra_env=None):
    """gunicorn (one sync worker) serving bench/flask_bench_app.py in mode;
    returns (server, port) once it accepts connections."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR + ":" + FLASK_APP_DIR,
               VIGIL_BENCH_AGENT=mode, VIGIL_STATE_DIR=directory,
               VIGIL_STORE_DIR=os.path.join(directory, "store"), **(extra_env or {}))
    server = subprocess.Popen(
        ["/usr/bin/python3", "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:%d" % port,
         "--log-level", "warning", "flask_bench_app:app"], env=env)
    try:
        wait_for_port(port, server)
    except RuntimeError:
        server.kill()
        raise
    return server, port


def pin_server(master, cpu):
    """Every thread of gunicorn's master and workers onto one CPU (threads
    the agent starts later inherit it)."""
    with open("/proc/%d/task/%d/children" % (master, master)) as children:
        pids = [master, *map(int, children.read().split())]
    for pid in pids:
        for task in os.listdir("/proc/%d/task" % pid):
            os.sched_setaffinity(int(task), {cpu})


def start_wrk(port, seconds, cpu):
    return subprocess.Popen(["wrk", "-t1", "-c4", "-d%ds" % seconds, "http://127.0.0.1:%d/" % port],
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def drive_together(servers, seconds, wrk_cpu):
    """wrk on both servers at once for a window: [(requests per second,
    worker CPU µs per request)] in the order of servers."""
    before = [worker_cpu_seconds(server.pid) for server, _ in servers]
    clients = [start_wrk(port, seconds, wrk_cpu) for _, port in servers]
    counts = []
    for client in clients:
        out = client.communicate()[0]
        if client.returncode != 0:
            raise RuntimeError("wrk failed")
        counts.append((float(WRK_RATE.search(out).group(1)), int(WRK_REQUESTS.search(out).group(1))))
    cpus = [worker_cpu_seconds(server.pid) - start for (server, _), start in zip(servers, before)]
    return [(rate, 1e6 * cpu / requests) for (rate, requests), cpu in zip(counts, cpus)]


# What the Flask benchmark compares with the app without vigil, by key:
# (label, flask_bench_app mode, environment). "on" is the figure,
# "aa" tells the noise, the others split the cost.
FLASK_CASES = {
    "on": ("agent and middleware, defaults", "on", {}),
    "aa": ("A/A control: the same app without vigil", "off", {}),
    "noheader": ("agent and middleware, no response header", "on", {"VIGIL_REQUESTS_HEADER": ""}),
    "middleware": ("middleware alone (agent not started)", "middleware", {}),
    "agent": ("agent alone (no middleware)", "agent", {}),
    "python": ("no vigil: a Python middleware that only calls the app", "python", {}),
    "header": ("no vigil: a Python middleware that adds one header", "header", {}),
    "tracking": ("no vigil agent: the middleware's tracking written in Python", "tracking", {}),
    "thread": ("no vigil: one idle Python thread more", "thread", {}),
}
# The page both servers serve (flask_bench_app.py): "ok", or work to put
# the cost against.
FLASK_PAGES = {"hello": "a hello-world page", "table": "a 200-row Jinja table page"}


def flask_pair(mode, extra_env, page, windows, seconds, off_first):
    """The app without vigil and the app in mode, served side by side on the
    same CPU and driven at the same time by two wrk on the other CPU: both
    workers see the same moments of this VM, whose speed changes by a third
    from one second to the next. Returns [(off, on)] per window."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise RuntimeError("the Flask benchmark needs two CPUs")
    wrk_cpu, server_cpu = cpus[0], cpus[-1]
    results = []
    with tempfile.TemporaryDirectory() as off_dir, tempfile.TemporaryDirectory() as on_dir:
        both_env = {"VIGIL_BENCH_PAGE": page}
        specs = {"off": ("off", off_dir, both_env),
                 "on": (mode, on_dir, {**both_env, **extra_env})}
        servers = {}
        try:
            for role in ("off", "on") if off_first else ("on", "off"):
                servers[role] = start_server(*specs[role])
            ordered = [servers["off"], servers["on"]]
            for server, port in ordered:
                start_wrk(port, 1, wrk_cpu).communicate()  # warm: imports, first requests
                pin_server(server.pid, server_cpu)
            for _ in range(windows):
                results.append(tuple(drive_together(ordered, seconds, wrk_cpu)))
        finally:
            for server, _ in servers.values():
                server.send_signal(signal.SIGTERM)
                server.wait()
    return results


def flask_compare(mode, extra_env, page, pairs, windows, seconds):
    """Fresh servers for each pair (which one starts first alternates): two
    processes of the same app differ by up to a point or two for as long as
    they live (where their heaps and code landed), so the servers are
    sampled as well as the windows. Returns one list of windows per pair."""
    return [flask_pair(mode, extra_env, page, windows, seconds, pair % 2 == 0)
            for pair in range(pairs)]


def flask_report(label, pairs):
    """One Markdown row: per pair, the median of its windows' changes; the
    median of those and their range."""
    cells = []
    for index in (1, 0):  # CPU per request, then requests per second
        medians = [100 * statistics.median(on[index] / off[index] - 1 for off, on in windows)
                   for windows in pairs]
        cells.append("%+.2f [%+.2f … %+.2f]" % (statistics.median(medians), min(medians), max(medians)))
    off_cpu = statistics.median(off[1] for windows in pairs for off, _ in windows)
    on_cpu = statistics.median(on[1] for windows in pairs for _, on in windows)
    return "| %s | %.1f | %.1f | %s | %s |" % (label, off_cpu, on_cpu, *cells)


def flask_benchmark(pairs, windows, seconds, cases, page):
    print("\nFlask under gunicorn (1 sync worker each, /usr/bin/python3) serving %s, both servers "
          "on one CPU, `wrk -t1 -c4` on each from the other; %d pairs of servers, %d windows of "
          "%d s each:\n" % (FLASK_PAGES[page], pairs, windows, seconds))
    print("| vigil | worker CPU per request, off (µs) | on (µs) "
          "| change %: median of the pairs [their range] | requests per second, change % |")
    print("|---|---|---|---|---|")
    for label, mode, extra_env in (FLASK_CASES[case] for case in cases):
        pair_results = flask_compare(mode, extra_env, page, pairs, windows, seconds)
        print(flask_report(label, pair_results), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--count", type=int, default=300000)
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--profiled-requests", type=int, default=40)
    parser.add_argument("--flask-pairs", type=int, default=6)
    parser.add_argument("--flask-windows", type=int, default=5)
    parser.add_argument("--flask-seconds", type=int, default=2)
    parser.add_argument("--flask-cases", default="on,aa",
                        help="comma-separated, of: %s; or all" % ", ".join(FLASK_CASES))
    parser.add_argument("--flask-page", default="hello", choices=sorted(FLASK_PAGES),
                        help="what both servers serve: %s" % "; ".join(
                            "%s, %s" % item for item in FLASK_PAGES.items()))
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
    if options.flask_pairs:
        cases = list(FLASK_CASES) if options.flask_cases == "all" else options.flask_cases.split(",")
        unknown = set(cases) - set(FLASK_CASES)
        if unknown:
            parser.error("unknown --flask-cases: %s" % ", ".join(sorted(unknown)))
        flask_benchmark(options.flask_pairs, options.flask_windows, options.flask_seconds, cases,
                        options.flask_page)


if __name__ == "__main__":
    main()
