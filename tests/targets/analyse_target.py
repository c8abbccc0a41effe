"""Records analysed_pkg under vigil.trace into DIR, for
tests/python/test_analyse.py: slow() sleeps 200 ms in a precise section,
busy() runs ordinary lines before and after. This script itself is not
traced, so slow()'s frame is the outermost one recorded.

    analyse_target.py DIR
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import analysed_pkg  # noqa: E402
import vigil.trace  # noqa: E402

vigil.trace.start(packages=["analysed_pkg"], dir=sys.argv[1], name="analysed")
analysed_pkg.busy(2000)
with vigil.trace.precise_timestamping():
    analysed_pkg.slow()
analysed_pkg.busy(2000)
vigil.trace.stop()
