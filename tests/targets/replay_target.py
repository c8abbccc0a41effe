"""Records traced_pkg.flow with vigil.trace into a trace directory, for
tests/python/test_replay.py, then stays alive: its trace is replayed while
it runs.

    replay_target.py DIR

Once everything recorded is in the files (vigil.trace.flush()), it writes
the process directory to the pipe VIGIL_READY_FD names, then waits for its
stdin to end.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil.trace  # noqa: E402
from traced_pkg import flow  # noqa: E402  (imported before: its module code is not recorded)


def main():
    trace_dir = vigil.trace.start(packages=["traced_pkg"], dir=sys.argv[1])
    flow.recurse(3)
    flow.caught()
    vigil.trace.flush()
    ready = int(os.environ["VIGIL_READY_FD"])
    os.write(ready, (trace_dir + "\n").encode())
    os.close(ready)
    sys.stdin.read()


if __name__ == "__main__":
    main()
