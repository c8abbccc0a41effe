"""Spends CPU in three functions in the proportions 60/30/10 (work of fixed
size), for a given number of seconds, then writes how much CPU time each
really took (time.thread_time) to the file named by VIGIL_TRUTH.
Usage: cpu_shares.py SECONDS"""
import json
import os
import sys
import time

UNIT = 200000  # loop iterations per unit of work (10-20 ms): a cycle spans many samples


def spin(units):
    total = 0
    for i in range(units * UNIT):
        total += i
    return total


def f60():
    return spin(6)


def f30():
    return spin(3)


def f10():
    return spin(1)


def main(seconds):
    spent = {"f60": 0.0, "f30": 0.0, "f10": 0.0}
    functions = [("f60", f60), ("f30", f30), ("f10", f10)]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, function in functions:
            start = time.thread_time()
            function()
            spent[name] += time.thread_time() - start
    path = os.environ.get("VIGIL_TRUTH")
    if path:
        with open(path, "w") as out:
            json.dump(spent, out)


main(float(sys.argv[1]))
