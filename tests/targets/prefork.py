"""A gunicorn-style pre-forking parent: it forks workers that each burn CPU in
their own function, then waits for them. Also starts a multiprocessing pool
whose workers do the same. Writes the worker PIDs to VIGIL_TRUTH once all
run, and signals readiness on VIGIL_READY_FD. Usage: prefork.py SECONDS"""
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _truth import signal_ready  # noqa: E402


def forked_worker_loop(seconds, ready_write):
    os.write(ready_write, b"x")
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        total += sum(range(1000))
    os._exit(0)


def pool_task(seconds):
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        total += sum(range(1000))
    return os.getpid()


def main(seconds):
    ready_read, ready_write = os.pipe()
    forked = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            forked_worker_loop(seconds, ready_write)
        forked.append(pid)
    for _ in forked:
        os.read(ready_read, 1)
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        pool_pids = [p.pid for p in pool._pool]
        result = pool.map_async(pool_task, [seconds] * 2, chunksize=1)
        path = os.environ.get("VIGIL_TRUTH")
        if path:
            with open(path, "w") as out:
                json.dump({"forked": forked, "pool": pool_pids, "parent": os.getpid()}, out)
        signal_ready()
        result.get()
    for pid in forked:
        os.waitpid(pid, 0)


main(float(sys.argv[1]))
