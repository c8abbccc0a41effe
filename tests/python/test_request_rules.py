"""What the agent keeps of requests, on every interpreter found: rules pick
requests by user, name, attribute, ratio and duration; the JSON request
log; per-request profiles; crash records with masked locals; reloads."""
import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import ROOT, TARGETS, run_vigil

PACKAGE_DIR = os.path.join(ROOT, "build", "python")
APP = os.path.join(TARGETS, "rules_app.py")
LOG_TIMEOUT = 60  # a guard, not a synchronisation


def write_config(tmp_path, rules, **sections):
    """vigil.toml with everything in tmp_path; sections adds lines to a section."""
    base = {"state": 'dir = "%s"' % tmp_path, "log": 'path = "%s"' % (tmp_path / "agent.log"),
            "request_log": 'path = "%s"' % (tmp_path / "requests.log"),
            "store": 'dir = "%s"' % (tmp_path / "store")}
    for section, text in sections.items():
        base[section] = base[section] + "\n" + text if section in base else text
    lines = ["[%s]\n%s" % item for item in base.items()] + [rules]
    path = tmp_path / "vigil.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_app(python, tmp_path, config, *args, env=None, stdin=None):
    environment = dict(os.environ, PYTHONPATH=PACKAGE_DIR, VIGIL_CONFIG=str(config), **(env or {}))
    return subprocess.Popen([python.path, APP, *map(str, args)], env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin)


def run_app(python, tmp_path, config, *args, env=None):
    process = start_app(python, tmp_path, config, *args, env=env)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def request_log(tmp_path):
    path = tmp_path / "requests.log"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log]


def stored(tmp_path, query, *parameters):
    with sqlite3.connect(str(tmp_path / "store" / "vigil.sqlite3")) as db:
        return db.execute(query, parameters).fetchall()


SELECT_RULES = """
[[rules]]
users = ["alice"]
actions = ["log"]
[[rules]]
requests = ["report.*"]
actions = ["log"]
[[rules]]
attributes = {db = "prod*"}
actions = ["log"]
[[rules]]
requests = "sampled"
ratio = 0.1
actions = ["log"]
[[rules]]
requests = "slowish"
min_duration = 0.1
actions = ["log", "profile"]
"""


def test_rules_select_exactly_the_requests_they_should(python, tmp_path):
    facts = run_app(python, tmp_path, write_config(tmp_path, SELECT_RULES), "select")
    logged = {line["txn"]: line for line in request_log(tmp_path)}
    assert set(facts["expected"]) <= set(logged)
    assert not set(facts["unexpected"]) & set(logged)
    # 4000 draws at 10%: 400 expected, sd 19; 5 sd either way.
    sampled = len(set(facts["sampled"]) & set(logged))
    assert 305 <= sampled <= 495, sampled
    assert not set(facts["fast"]) & set(logged), "fast requests failed min_duration"
    for txn in facts["slow"]:
        assert logged[txn]["profile_kept"] and logged[txn]["duration"] >= 0.15
    profiles = {txn for (txn,) in stored(tmp_path, "SELECT txn FROM profiles")}
    assert profiles == set(facts["slow"]), "fast requests' profiles are dropped"
    expected_lines = len(facts["expected"]) + sampled + len(facts["slow"])
    assert len(logged) == expected_lines
    line = logged[facts["expected"][0]]
    assert line["name"] == "anything" and line["user"] == "alice" and line["outcome"] == "ok"
    assert line["start"].endswith("Z") and len(line["start"].split(".")[1]) == 7  # µs + Z
    assert line["cpu"] is not None and line["duration"] >= 0
    assert logged[facts["expected"][2]]["attributes"] == {"db": "prod-eu"}


def test_a_slow_function_dominates_its_requests_profile(python, tmp_path):
    config = write_config(tmp_path, '[[rules]]\nrequests = "profiled.*"\nactions = ["profile"]',
                          profile="rate = 1000")
    txn = run_app(python, tmp_path, config, "profile")["txn"]
    [(folded,)] = stored(tmp_path, "SELECT folded FROM profiles WHERE txn = ?", txn)
    counts = {"heavy": 0, "light": 0}
    total = 0
    for line in folded.splitlines():
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        for name in counts:
            if ";%s (" % name in stack or stack.startswith(name + " ("):
                counts[name] += int(count)
    assert total >= 100, folded
    # heavy() spins for 0.9 s of CPU, light() for 0.3 s: 75% and 25%.
    assert abs(100 * counts["heavy"] / total - 75) <= 5, (counts, total)
    assert abs(100 * counts["light"] / total - 25) <= 5, (counts, total)
    show = run_vigil("show", txn, "--store", tmp_path / "store", check=True).stdout
    assert "heavy" in show and "light" in show


def test_a_crash_is_kept_with_its_stack_and_masked_locals(python, tmp_path):
    txn = run_app(python, tmp_path, write_config(tmp_path, ""), "crash")["txn"]
    show = run_vigil("show", txn, "--store", tmp_path / "store", check=True).stdout
    assert "ValueError" in show and "card 1111 refused" in show
    assert "check_card" in show and "scenario_crash" in show
    assert "hunter2" not in show and "abc123" not in show and "4111111111111111" in show
    assert "'***'" in show and "42" in show and "'retries': 3" in show


@pytest.mark.parametrize("queue", [1_000_000, 8])
def test_request_log_of_many_processes_and_threads(python, tmp_path, queue):
    """8 processes x 8 threads at full speed into one request log: every line
    parses, none is lost while the queue had room, the drop count is exact."""
    config = write_config(tmp_path, '[[rules]]\nrequests = "flood"\nactions = ["log"]',
                          store="queue = %d" % queue)
    processes = [start_app(python, tmp_path, config, "flood", 8, 500) for _ in range(8)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    lines = request_log(tmp_path)  # json.loads of every line: none interleaved
    given = [txn for result in results for txn in result["txns"]]
    assert len(given) == len(set(given)) == 8 * 8 * 500
    logged = [line["txn"] for line in lines]
    assert len(logged) == len(set(logged)) and set(logged) <= set(given)
    dropped = sum(result["counters"]["records_dropped"] for result in results)
    if queue > len(given):
        assert dropped == 0 and len(logged) == len(given)
    else:
        assert len(logged) + dropped == len(given)


@pytest.mark.parametrize("how", ["sighup", "reload"])
def test_rules_reload_without_restart(python, tmp_path, how):
    config = write_config(tmp_path, '[[rules]]\nrequests = "a"\nactions = ["log"]')
    env = {"VIGIL_TEST_RELOAD_FROM_PYTHON": "1"} if how == "reload" else {}
    process = start_app(python, tmp_path, config, "reload", env=env, stdin=subprocess.PIPE)
    assert json.loads(process.stdout.readline()) == {"ready": True}
    config.write_text(config.read_text().replace('requests = "a"', 'requests = "b"'))
    if how == "sighup":
        # logrotate moves the file away, then sends SIGHUP: the agent reopens.
        deadline = time.monotonic() + LOG_TIMEOUT
        while not request_log(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.01)  # the first line reaches the file at the agent's next tick
        (tmp_path / "requests.log").rename(tmp_path / "requests.log.1")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + LOG_TIMEOUT
        while time.monotonic() < deadline:
            log = (tmp_path / "agent.log").read_text() if (tmp_path / "agent.log").exists() else ""
            if "config_reloaded" in log:
                break
            time.sleep(0.02)
    out, err = process.communicate("go\n", timeout=120)
    assert process.returncode == 0, err
    facts = json.loads(out.splitlines()[-1])
    logged = [line["txn"] for line in request_log(tmp_path)]
    if how == "sighup":
        with open(tmp_path / "requests.log.1", encoding="utf-8") as rotated:
            assert [json.loads(line)["txn"] for line in rotated] == [facts["before"][0]]
        assert logged == [facts["after"][1]]
    else:
        assert logged == [facts["before"][0], facts["after"][1]]


def test_bad_rules_fail_at_start_naming_file_and_key(python, tmp_path):
    config = write_config(tmp_path, '[[rules]]\nrequests = "report.[a-"\nactions = ["log"]')
    result = subprocess.run([python.path, APP, "select"], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=PACKAGE_DIR, VIGIL_CONFIG=str(config)))
    assert result.returncode != 0
    assert str(config) in result.stderr and "requests" in result.stderr
