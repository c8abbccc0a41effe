"""A target that never holds still: threads start and end all the time, and
each calls, recurses and returns at full speed."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _truth import signal_ready  # noqa: E402


def recurse(depth):
    if depth:
        return recurse(depth - 1) + 1
    return sum(range(20))


def short_lived(n):
    for i in range(200):
        recurse((n + i) % 40)


def long_lived(n):
    while True:
        for i in range(50):
            recurse((n * 7 + i) % 60)


def spawner():
    n = 0
    while True:
        threads = [threading.Thread(target=short_lived, args=(n + i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        n += 1


for i in range(3):
    threading.Thread(target=long_lived, args=(i,), daemon=True).start()
threading.Thread(target=spawner, daemon=True).start()
signal_ready()
long_lived(99)
