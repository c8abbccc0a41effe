"""An application whose requests the agent's rules pick, for
tests/python/test_request_rules.py.

    rules_app.py SCENARIO [ARG...]

The agent starts from the TOML file in VIGIL_CONFIG (the test writes it);
each scenario prints one JSON line with what it did (transaction ids by
kind), stops the agent (which writes everything the rules kept), and exits.
"""
import json
import os
import sys
import threading
import time

import vigil


def finish(**facts):
    vigil.stop()  # the watchdog drains, the store flushes
    print(json.dumps(facts), flush=True)


def run(name, user=None, seconds=0.0, **attributes):
    with vigil.request(name, user, **attributes) as request:
        if seconds:
            time.sleep(seconds)
    return request.txn


def scenario_select():
    assert vigil.start(os.environ["VIGIL_CONFIG"])
    expected, unexpected = [], []
    expected.append(run("anything", user="alice"))
    unexpected.append(run("anything", user="bob"))
    expected.append(run("report.monthly"))
    unexpected.append(run("reports"))
    expected.append(run("query", db="prod-eu"))
    unexpected.append(run("query", db="test"))
    unexpected.append(run("query"))
    sampled = [run("sampled") for _ in range(4000)]
    fast = [run("slowish") for _ in range(3)]
    slow = [run("slowish", seconds=0.15) for _ in range(2)]
    finish(expected=expected, unexpected=unexpected, sampled=sampled, fast=fast, slow=slow)


def spin(seconds):
    """CPU work for about `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    total = 0
    while time.thread_time() < end:
        total += sum(range(50))
    return total


def heavy():
    return spin(0.9)


def light():
    return spin(0.3)


def scenario_profile():
    assert vigil.start(os.environ["VIGIL_CONFIG"])
    with vigil.request("profiled.report") as request:
        heavy()
        light()
    finish(txn=request.txn)


def check_card(card_number, password, settings):
    plain = 42
    raise ValueError("card %s refused" % card_number[-4:])


def scenario_crash():
    assert vigil.start(os.environ["VIGIL_CONFIG"])
    try:
        with vigil.request("payment.capture", user="alice") as request:
            check_card("4111111111111111", "hunter2", {"token": "abc123", "retries": 3})
    except ValueError:
        pass
    finish(txn=request.txn)


def scenario_flood(threads, per_thread):
    """Requests at full speed from several threads, each kept by a log rule."""
    assert vigil.start(os.environ["VIGIL_CONFIG"])
    txns = [[] for _ in range(int(threads))]

    def work(index):
        mine = txns[index]
        for number in range(int(per_thread)):
            with vigil.request("flood", user="u%d" % index, n=number) as request:
                mine.append(request.txn)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    counters = vigil._vigil.counters()
    finish(txns=[txn for mine in txns for txn in mine], counters=counters)


def scenario_reload():
    """Requests "a" and "b" before and after the test changes the rules."""
    assert vigil.start(os.environ["VIGIL_CONFIG"])
    before = [run("a"), run("b")]
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the test rewrote the file and sent SIGHUP or asked for reload()
    if os.environ.get("VIGIL_TEST_RELOAD_FROM_PYTHON"):
        assert vigil.reload()
    after = [run("a"), run("b")]
    finish(before=before, after=after)


if __name__ == "__main__":
    globals()["scenario_" + sys.argv[1]](*sys.argv[2:])
