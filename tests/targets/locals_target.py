"""A frame with locals of every type vigil renders, parked on a known line."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _truth import FOREVER, signal_ready  # noqa: E402


class Custom:
    pass


def with_locals(number, text):
    big = 2**100
    negative = -7
    ratio = 0.25
    flag = True
    nothing = None
    raw = b"\x00ab"
    pair = (1, "two")
    items = [1, 2, 3]
    mapping = {"key": "value", "n": 1}
    captured = "in a cell"
    long_text = "x" * 1000
    custom = Custom()
    long_list = list(range(100))
    db_password = "hunter2"
    headers = {"Authorization": "Bearer abc", "Accept": "text/html"}

    def closure():
        return captured

    signal_ready(); FOREVER.acquire()
    return closure


with_locals(42, "héllo wörld")
