"""An application with the vigil agent, for tests/python/test_agent.py.

    agent_app.py SCENARIO [ARG...]

The agent is started with vigil.start(**overrides) where overrides come from
the VIGIL_TEST_OVERRIDES environment variable (JSON). Readiness goes through
the pipe whose descriptor is in VIGIL_READY_FD, as one JSON line; the test
then acts, and writes a line on stdin to let the target go on or finish.
"""
import json
import logging
import os
import re
import signal
import sys
import threading
import time

import vigil


def ready(**facts):
    with os.fdopen(int(os.environ["VIGIL_READY_FD"]), "w") as pipe:
        pipe.write(json.dumps(dict(facts, pid=os.getpid())) + "\n")


def say(**facts):
    print(json.dumps(facts), flush=True)


def wait_for_test():
    sys.stdin.readline()


def start_agent():
    stdlib_log = os.environ.get("VIGIL_TEST_STDLIB_LOG")
    if stdlib_log:
        logging.basicConfig(filename=stdlib_log, format="%(name)s %(levelname)s %(message)s")
    overrides = json.loads(os.environ.get("VIGIL_TEST_OVERRIDES", "{}"))
    assert vigil.start(**overrides)


def parked_requests(count, daemon=False):
    """count threads, each parked inside a request until the test says go."""
    release = threading.Event()
    entered = threading.Barrier(count + 1)
    facts = []

    def serve(index):
        with vigil.request("sale.order.confirm", user="user%d" % index, db_pid=1000 + index,
                           shop="Zürich") as request:
            facts.append({"txn": request.txn, "native_id": threading.get_native_id(),
                          "user": "user%d" % index, "db_pid": str(1000 + index)})
            entered.wait()
            release.wait()

    threads = [threading.Thread(target=serve, args=(i,), name="worker-%d" % i, daemon=daemon)
               for i in range(count)]
    for thread in threads:
        thread.start()
    entered.wait()
    return release, threads, facts


def scenario_parked(count="4"):
    start_agent()
    release, threads, facts = parked_requests(int(count))
    ready(requests=facts, state=vigil._vigil.state_path())
    wait_for_test()
    release.set()
    for thread in threads:
        thread.join()
    say(released=True)
    wait_for_test()


def backtracking_input():
    """A subject for r'(a+)+$' that takes at least ~2 s to fail to match."""
    pattern = re.compile(r"(a+)+$")
    size = 12
    while True:
        started = time.perf_counter()
        pattern.match("a" * size + "b")
        if time.perf_counter() - started > 0.05:
            break
        size += 1
    return pattern, "a" * (size + 6) + "b"  # each more 'a' doubles the time


def stuck_in_regex(pattern, subject):
    return pattern.match(subject)  # holds the GIL until it fails


def scenario_regex():
    pattern, subject = backtracking_input()
    start_agent()
    with vigil.request("report.generate", user="admin", db_pid=4242) as request:
        ready(txn=request.txn, native_id=threading.get_native_id())
        stuck_in_regex(pattern, subject)
    wait_for_test()


def scenario_signals():
    chained = []
    signal.signal(signal.SIGUSR1, lambda number, frame: chained.append(number))
    start_agent()
    release, threads, facts = parked_requests(2)
    ready(requests=facts)
    wait_for_test()  # the test sends SIGUSR1 and SIGUSR2 meanwhile
    release.set()
    for thread in threads:
        thread.join()
    # Python runs its handlers on the main thread, between bytecodes.
    for _ in range(100):
        if chained:
            break
        time.sleep(0.01)
    say(chained=chained)
    wait_for_test()


def scenario_fork():
    start_agent()
    facts_read, facts_write = os.pipe()
    go_read, go_write = os.pipe()
    child = os.fork()
    if child == 0:
        release, threads, facts = parked_requests(1)
        facts = {"requests": facts, "state": vigil._vigil.state_path()}
        os.write(facts_write, (json.dumps(facts) + "\n").encode())
        os.read(go_read, 1)
        release.set()
        for thread in threads:
            thread.join()
        os._exit(0)
    with os.fdopen(facts_read) as pipe:
        child_facts = json.loads(pipe.readline())
    with vigil.request("parent.request") as request:
        ready(child=child, child_facts=child_facts, parent_txn=request.txn,
              state=vigil._vigil.state_path())
        wait_for_test()
        os.write(go_write, b"x")
        os.waitpid(child, 0)
    wait_for_test()


def scenario_exit_with_running_requests():
    start_agent()
    parked_requests(3, daemon=True)  # still in their requests when the interpreter exits
    ready(state=vigil._vigil.state_path())
    wait_for_test()
    sys.exit(0)


def scenario_ids(count):
    ids = [vigil._vigil.next_txn() for _ in range(int(count))]
    ready(ids=len(ids))
    sys.stdout.write("\n".join(ids) + "\n")


def scenario_churn(seconds):
    """Requests begin and end at full speed in threads with changing stacks,
    while the watchdog walks them (threshold 0) and SIGUSR2 asks for dumps."""
    start_agent()
    stop = time.monotonic() + float(seconds)

    def recurse(depth):
        if depth:
            return recurse(depth - 1)
        with vigil.request("churn", user="u", n=depth):
            return sum(range(200))

    def work():
        depth = 0
        while time.monotonic() < stop:
            recurse(depth % 60)
            depth += 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    ready()
    for thread in threads:
        thread.join()
    print("survived", flush=True)


if __name__ == "__main__":
    globals()["scenario_" + sys.argv[1]](*sys.argv[2:])
