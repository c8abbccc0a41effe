"""What bench/run_agent_bench.py measures inside one interpreter.

    agent_target.py requests N on|off   -> JSON: ns per loop of each variant
    agent_target.py idle SECONDS on|off -> JSON: the process's CPU seconds while idle
    agent_target.py profiled N on|off   -> JSON: median seconds of a fixed request,
                                           sampled at 100 Hz by a profile rule or not

The agent (when "on") writes its state file and ids counter in a temporary
directory.
"""
import json
import os
import sys
import tempfile
import time

import vigil


def start_agent(mode, directory):
    if mode == "on":
        assert vigil.start(state_dir=directory, store_dir=os.path.join(directory, "store"))


def loop_ns(body, count):
    started = time.perf_counter_ns()
    body(count)
    return (time.perf_counter_ns() - started) / count


def empty(count):
    for _ in range(count):
        pass


def begin_end(count):
    request = vigil.request
    for _ in range(count):
        with request("sale.order.confirm", user="admin", db_pid=1234):
            pass


def requests(count, mode):
    with tempfile.TemporaryDirectory() as directory:
        start_agent(mode, directory)
        count = int(count)
        begin_end(count // 10)  # warm up
        result = {"empty": loop_ns(empty, count), "request": loop_ns(begin_end, count)}
        vigil.stop()
    print(json.dumps(result))


def cpu_ns():
    """CPU time of every thread of this process, in ns (the scheduler's own
    count: /proc/PID/task/TID/schedstat, finer than os.times' ticks)."""
    total = 0
    for task in os.listdir("/proc/self/task"):
        with open("/proc/self/task/%s/schedstat" % task) as stat:
            total += int(stat.read().split()[0])
    return total


def idle(seconds, mode):
    with tempfile.TemporaryDirectory() as directory:
        start_agent(mode, directory)
        time.sleep(0.5)  # let start-up settle: the steady state is measured
        before = cpu_ns()
        time.sleep(float(seconds))
        after = cpu_ns()
        vigil.stop()
    print(json.dumps({"cpu": (after - before) / 1e9, "seconds": float(seconds)}))


def work():
    total = 0
    for number in range(300000):
        total += number % 7
    return total


def profiled(count, mode):
    """Each request does the same pure-Python work; a rule profiles it or not."""
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "vigil.toml")
        with open(config, "w") as out:
            out.write('[state]\ndir = "%s"\n[store]\ndir = "%s/store"\n[profile]\nrate = 100\n'
                      '[[rules]]\nrequests = "%s"\nactions = ["profile"]\n'
                      % (directory, directory, "work" if mode == "on" else "nothing"))
        assert vigil.start(config)
        durations = []
        for _ in range(int(count)):
            started = time.perf_counter()
            with vigil.request("work"):
                work()
            durations.append(time.perf_counter() - started)
        vigil.stop()
    durations.sort()
    print(json.dumps({"median": durations[len(durations) // 2]}))


if __name__ == "__main__":
    {"requests": requests, "idle": idle, "profiled": profiled}[sys.argv[1]](*sys.argv[2:])
