"""Traced by tests/targets/analyse_target.py: slow() is the hot line."""
import time


def busy(n):
    total = 0
    for i in range(n):
        total += i
    return total


def slow():
    time.sleep(0.2)
    return 1
