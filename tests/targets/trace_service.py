"""A program recording itself with vigil.trace, for
tests/python/test_trace_recording.py.

    trace_service.py MODE TRACE_DIR

MODE:
  fork       records traced_pkg, forks a child that runs traced code too;
             prints JSON {"parent": its trace dir, "child": the child's pid}
  kill       records a loop that never ends; once it ran a while it says
             "ready <trace dir>" on VIGIL_READY_FD and goes on until killed
  disk-full  records under a file size limit of 256 KiB (SIGXFSZ ignored:
             a full disk to the writer), then goes on and prints "done"
  asyncio    records a coroutine that sleeps 200 ms in asyncio.sleep
"""
import asyncio
import json
import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vigil.trace  # noqa: E402
from traced_pkg import flow  # noqa: E402


def say_ready(text):
    fd = int(os.environ["VIGIL_READY_FD"])
    os.write(fd, ("ready %s\n" % text).encode())
    os.close(fd)


def fork(base):
    where = vigil.trace.start(packages=["traced_pkg"], dir=base, name="service")
    flow.loop_sum(10)
    child = os.fork()
    if child == 0:
        flow.recurse(3)
        vigil.trace.stop()
        os._exit(0)
    os.waitpid(child, 0)
    flow.recurse(2)
    vigil.trace.stop()
    print(json.dumps({"parent": where, "child": child}))


def kill(base):
    where = vigil.trace.start(packages=["traced_pkg"], dir=base, name="service")
    for _ in range(2000):
        flow.loop_sum(50)
    say_ready(where)
    while True:
        flow.loop_sum(50)


def disk_full(base):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))
    vigil.trace.start(packages=["traced_pkg"], dir=base, name="service")
    stopped = False
    for _ in range(1000):  # some 64 MiB of events at most
        for _ in range(1000):
            flow.recurse(20)
        vigil.trace.flush()
        stopped = vigil.trace.stats()["stopped"]
        if stopped:
            break
    vigil.trace.stop()
    print("done", "stopped" if stopped else "recording")


async def pause():
    await asyncio.sleep(0.2)
    return flow.loop_sum(3)


def asyncio_sleep(base):
    where = vigil.trace.start(packages=["traced_pkg", "__main__"], dir=base, name="service")
    asyncio.run(pause())
    vigil.trace.stop()
    print(json.dumps({"dir": where}))


if __name__ == "__main__":
    mode, base = sys.argv[1:3]
    {"fork": fork, "kill": kill, "disk-full": disk_full, "asyncio": asyncio_sleep}[mode](base)
