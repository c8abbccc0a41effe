"""A target whose every thread is parked on a known line.

Threads: 20 threads each in its own function, recursion 300 deep, time.sleep,
a key function called back from sorted() (C calling Python), a generator, an
asyncio coroutine, a method, a nested function, a function with a non-ASCII
name in a module with a non-ASCII file name, and (with --long-dir DIR) a
module under a path longer than 200 characters. See _truth.py for how the
truth is recorded and readiness signalled.
"""
import asyncio
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _truth import FOREVER, emit, own_stack, wait_until_parked  # noqa: E402

PARKED = {}


def expect():
    """Registers that the calling function will block on its current line."""
    caller = sys._getframe(1)
    PARKED[threading.get_ident()] = (caller.f_code.co_name, caller.f_lineno)


def park_00(): expect(); FOREVER.acquire()
def park_01(): expect(); FOREVER.acquire()
def park_02(): expect(); FOREVER.acquire()
def park_03(): expect(); FOREVER.acquire()
def park_04(): expect(); FOREVER.acquire()
def park_05(): expect(); FOREVER.acquire()
def park_06(): expect(); FOREVER.acquire()
def park_07(): expect(); FOREVER.acquire()
def park_08(): expect(); FOREVER.acquire()
def park_09(): expect(); FOREVER.acquire()
def park_10(): expect(); FOREVER.acquire()
def park_11(): expect(); FOREVER.acquire()
def park_12(): expect(); FOREVER.acquire()
def park_13(): expect(); FOREVER.acquire()
def park_14(): expect(); FOREVER.acquire()
def park_15(): expect(); FOREVER.acquire()
def park_16(): expect(); FOREVER.acquire()
def park_17(): expect(); FOREVER.acquire()
def park_18(): expect(); FOREVER.acquire()
def park_19(): expect(); FOREVER.acquire()


def recurse(depth):
    if depth == 0:
        expect(); FOREVER.acquire()
    return recurse(depth - 1)


def sleeper():
    expect(); time.sleep(1e6)


def key_function(item):
    if item == 2:
        expect(); FOREVER.acquire()
    return item


def sort_with_callback():
    return sorted([3, 1, 2], key=key_function)


def generator():
    yield 1
    expect(); FOREVER.acquire()
    yield 2


def consume_generator():
    return list(generator())


async def leaf_coroutine():
    expect(); FOREVER.acquire()


async def outer_coroutine():
    await leaf_coroutine()


def run_event_loop():
    asyncio.run(outer_coroutine())


class Worker:
    def park(self):
        expect(); FOREVER.acquire()


def outer():
    def inner():
        expect(); FOREVER.acquire()

    inner()


def long_path_module(directory):
    """Imports a module from a directory whose path is longer than 200 characters."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "deep_module.py")
    with open(path, "w", encoding="utf-8") as out:
        out.write("def deep_function(expect, lock):\n    expect(); lock.acquire()\n")
    sys.path.insert(0, directory)
    import deep_module

    return lambda: deep_module.deep_function(expect, FOREVER)


def main():
    targets = [globals()["park_%02d" % i] for i in range(20)]
    targets += [
        lambda: recurse(300),
        sleeper,
        sort_with_callback,
        consume_generator,
        run_event_loop,
        Worker().park,
        outer,
    ]
    import módulo_ünïcode

    targets.append(lambda: módulo_ünïcode.función_ñ(expect, FOREVER))
    if "--long-dir" in sys.argv:
        targets.append(long_path_module(sys.argv[sys.argv.index("--long-dir") + 1]))
    threads = [
        threading.Thread(target=target, name="worker-%d" % i, daemon=True)
        for i, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    while len(PARKED) < len(threads):
        threading.Event().wait(0.001)
    wait_until_parked(PARKED)
    emit(own_stack=own_stack()); FOREVER.acquire()


if __name__ == "__main__":
    main()
