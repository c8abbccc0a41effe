"""The in-process agent (vigil._vigil) on every interpreter found: requests
and transaction ids, the live state read by `vigil requests`, the
long-request logger, signals, fork and exit."""
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest

from conftest import ROOT, VIGIL, run_vigil

PACKAGE_DIR = os.path.join(ROOT, "build", "python")
TXN = re.compile(r"^[a-z]+_[a-z]+_[0-9a-f]{4}$")
# A guard against a log line that never comes, not a synchronisation.
LOG_TIMEOUT = 60


def agent_env(tmp_path, **overrides):
    overrides.setdefault("state_dir", str(tmp_path))
    overrides.setdefault("log_path", str(tmp_path / "agent.log"))
    return {
        "PYTHONPATH": PACKAGE_DIR,
        "VIGIL_TEST_OVERRIDES": json.dumps(overrides),
    }


def run_python(python, code, env=None, check=True):
    environment = dict(os.environ, PYTHONPATH=PACKAGE_DIR, **(env or {}))
    result = subprocess.run([python.path, "-c", code], capture_output=True, text=True,
                            env=environment, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError("python failed (%d): %s" % (result.returncode, result.stderr))
    return result


def log_lines(path, event=None):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as log:
        lines = [json.loads(line) for line in log]
    return [line for line in lines if event is None or line["event"] == event]


def wait_for_lines(path, event, count, process=None):
    """Polls the agent's log until it holds count lines of event."""
    deadline = time.monotonic() + LOG_TIMEOUT
    while time.monotonic() < deadline:
        lines = log_lines(path, event)
        if len(lines) >= count:
            return lines
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError("%d %s lines expected in %s, got %s" % (count, event, path, log_lines(path)))


def go_on(target):
    target.process.stdin.write(b"\n")
    target.process.stdin.flush()


def requests_json(pid, tmp_path):
    result = run_vigil("requests", "--json", "--state-dir", tmp_path, pid, check=True)
    return json.loads(result.stdout)


def test_request_api(python):
    code = r"""
import asyncio, logging, re, vigil
assert vigil.current_transaction() is None
with vigil.request("a", user="u", db_pid=7) as outer:
    assert re.match(r"^[a-z]+_[a-z]+_[0-9a-f]{4}$", outer.txn), outer.txn
    assert vigil.current_transaction() == outer.txn
    assert (outer.name, outer.user, outer.attributes) == ("a", "u", {"db_pid": 7})
    with vigil.request("b") as inner:
        assert vigil.current_transaction() == inner.txn != outer.txn
    assert vigil.current_transaction() == outer.txn
    assert outer.running and outer.elapsed >= 0
assert vigil.current_transaction() is None and not outer.running
try:
    with outer:
        pass
except RuntimeError:
    pass
else:
    raise AssertionError("a request ran twice")

@vigil.request("decorated", user="d")
def decorated(x):
    return vigil.current_request()
seen = decorated(1)
assert seen.name == "decorated" and seen.user == "d" and decorated(1).txn != seen.txn
assert decorated.__name__ == "decorated"

@vigil.request("coroutine")
async def handler(delay):
    txn = vigil.current_transaction()
    await asyncio.sleep(delay)
    assert vigil.current_transaction() == txn  # each task keeps its own
    return txn
async def main():
    return await asyncio.gather(handler(0.02), handler(0.01))
first, second = asyncio.run(main())
assert first != second and vigil.current_transaction() is None

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.txn)
handler = Keep()
handler.addFilter(vigil.TransactionFilter())
logging.getLogger("t").addHandler(handler)
with vigil.request("logged") as logged:
    logging.getLogger("t").warning("inside")
logging.getLogger("t").warning("outside")
assert records == [logged.txn, "-"], records
print("ok")
"""
    assert run_python(python, code).stdout.strip() == "ok"


def test_requests_shows_running_requests(python, start_target, tmp_path):
    target = start_target(python, "agent_app.py", ["parked", "4"], env=agent_env(tmp_path))
    facts = json.loads(target.ready_line)
    state = facts["state"]
    assert state == str(tmp_path / ("vigil-%d" % target.pid))
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    document = requests_json(target.pid, tmp_path)
    assert document["pid"] == target.pid
    assert document["counters"]["requests_started"] == 4
    running = {request["txn"]: request for request in document["requests"]}
    assert len(running) == 4
    for expected in facts["requests"]:
        request = running[expected["txn"]]
        assert request["name"] == "sale.order.confirm"
        assert request["user"] == expected["user"]
        assert request["attributes"] == {"db_pid": expected["db_pid"], "shop": "Zürich"}
        assert request["native_thread_id"] == expected["native_id"]
        assert request["elapsed"] >= 0
    text = run_vigil("requests", "--state-dir", tmp_path, target.pid, check=True).stdout
    for expected in facts["requests"]:
        assert expected["txn"] in text and "db_pid=%s" % expected["db_pid"] in text
    go_on(target)
    assert json.loads(target.process.stdout.readline()) == {"released": True}
    document = requests_json(target.pid, tmp_path)
    assert document["requests"] == []
    assert document["counters"]["requests_finished"] == 4
    go_on(target)
    assert target.process.wait(timeout=60) == 0
    assert not os.path.exists(state), "the state file outlived the process"


def test_long_request_logged_with_stack_while_it_holds_the_gil(python, start_target, tmp_path):
    env = agent_env(tmp_path, long_requests_threshold=0.2, long_requests_interval=0.3)
    target = start_target(python, "agent_app.py", ["regex"], env=env)
    facts = json.loads(target.ready_line)
    reports = wait_for_lines(str(tmp_path / "agent.log"), "long_request", 2, target.process)
    go_on(target)
    assert target.process.wait(timeout=300) == 0
    for number, report in enumerate(reports[:2], 1):
        assert report["txn"] == facts["txn"]
        assert report["pid"] == target.pid
        assert report["name"] == "report.generate" and report["user"] == "admin"
        assert report["attributes"] == {"db_pid": "4242"}
        assert report["native_thread_id"] == facts["native_id"]
        assert report["report"] == number
        assert report["elapsed"] >= 0.2
        functions = [frame["function"] for frame in report["stack"]]
        assert functions[0] == "stuck_in_regex", report["stack"]  # re.match is C code
        assert "scenario_regex" in functions
        assert report["stack"][0]["file"].endswith("agent_app.py")
    assert reports[1]["elapsed"] - reports[0]["elapsed"] >= 0.25


def test_signals_write_requests_and_stacks_and_chain(python, start_target, tmp_path):
    target = start_target(python, "agent_app.py", ["signals"], env=agent_env(tmp_path))
    facts = json.loads(target.ready_line)
    log = str(tmp_path / "agent.log")
    os.kill(target.pid, signal.SIGUSR1)
    table = wait_for_lines(log, "running_requests", 1, target.process)[0]
    assert sorted(r["txn"] for r in table["requests"]) == sorted(r["txn"] for r in facts["requests"])
    os.kill(target.pid, signal.SIGUSR2)
    stacks = wait_for_lines(log, "thread_stacks", 1, target.process)[0]
    by_id = {thread["native_thread_id"]: thread for thread in stacks["threads"]}
    for request in facts["requests"]:
        functions = [frame["function"] for frame in by_id[request["native_id"]]["stack"]]
        assert any(name.endswith("serve") for name in functions), functions
    go_on(target)
    assert json.loads(target.process.stdout.readline()) == {"chained": [signal.SIGUSR1]}
    go_on(target)
    assert target.process.wait(timeout=60) == 0


def test_forked_child_has_its_own_agent(python, start_target, tmp_path):
    target = start_target(python, "agent_app.py", ["fork"], env=agent_env(tmp_path))
    facts = json.loads(target.ready_line)
    child, child_facts = facts["child"], facts["child_facts"]
    assert child_facts["state"] == str(tmp_path / ("vigil-%d" % child))
    assert facts["state"] == str(tmp_path / ("vigil-%d" % target.pid))
    parent = requests_json(target.pid, tmp_path)
    assert [r["txn"] for r in parent["requests"]] == [facts["parent_txn"]]
    in_child = requests_json(child, tmp_path)
    assert [r["txn"] for r in in_child["requests"]] == [child_facts["requests"][0]["txn"]]
    assert in_child["requests"][0]["native_thread_id"] == child_facts["requests"][0]["native_id"]
    go_on(target)
    go_on(target)
    assert target.process.wait(timeout=60) == 0
    assert not os.path.exists(facts["state"])
    # The child left with os._exit, as pre-forking servers' workers do: its
    # file is recognised as left by a dead process.
    result = run_vigil("requests", "--state-dir", tmp_path, child)
    assert result.returncode == 3 and "no process with PID" in result.stderr


def test_exit_is_clean_with_requests_still_running(python, start_target, tmp_path):
    target = start_target(python, "agent_app.py", ["exit_with_running_requests"],
                          env=agent_env(tmp_path))
    state = json.loads(target.ready_line)["state"]
    go_on(target)
    assert target.process.wait(timeout=60) == 0
    assert target.process.stderr.read() == b""
    assert not os.path.exists(state)


@pytest.mark.parametrize("where", ["missing-directory", "full-disk"])
def test_unwritable_log_is_reported_once_and_the_app_goes_on(python, start_target, tmp_path, where):
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    path = str(tmp_path / "missing" / "agent.log") if where == "missing-directory" else "/dev/full"
    env = agent_env(tmp_path, log_path=path)
    target = start_target(python, "agent_app.py", ["signals"], env=env)
    for _ in range(3):
        os.kill(target.pid, signal.SIGUSR1)
    document = {}
    deadline = time.monotonic() + LOG_TIMEOUT
    while time.monotonic() < deadline and document.get("counters", {}).get("log_lines_dropped", 0) < 1:
        document = requests_json(target.pid, tmp_path)
    go_on(target)
    target.process.stdout.readline()
    go_on(target)
    assert target.process.wait(timeout=60) == 0
    errors = target.process.stderr.read().decode().splitlines()
    assert len(errors) == 1 and "cannot write the agent log" in errors[0], errors
    expected = "No such file or directory" if where == "missing-directory" else "No space left on device"
    assert expected in errors[0]


def test_lines_reach_stdlib_logging_once_the_gil_is_free(python, start_target, tmp_path):
    """The file gets the long-request line while the request holds the GIL;
    stdlib logging gets the same line when the GIL is free again."""
    env = agent_env(tmp_path, long_requests_threshold=0.2, long_requests_interval=10,
                    log_logger="vigil.agent")
    env["VIGIL_TEST_STDLIB_LOG"] = str(tmp_path / "stdlib.log")
    target = start_target(python, "agent_app.py", ["regex"], env=env)
    txn = json.loads(target.ready_line)["txn"]
    in_file = wait_for_lines(str(tmp_path / "agent.log"), "long_request", 1, target.process)[0]
    go_on(target)
    assert target.process.wait(timeout=300) == 0
    with open(tmp_path / "stdlib.log", encoding="utf-8") as log:
        records = [line.split(" ", 2) for line in log.read().splitlines()]
    long_requests = [json.loads(message) for logger, level, message in records
                     if logger == "vigil.agent" and level == "WARNING"]
    assert [line["txn"] for line in long_requests] == [txn]
    assert long_requests[0] == in_file


def test_transaction_ids_are_unique_in_a_process_and_across_processes(python, tmp_path):
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR, VIGIL_STATE_DIR=str(tmp_path))
    code = "import sys, vigil\nids = [vigil._vigil.next_txn() for _ in range(%d)]\n" \
           "sys.stdout.write('\\n'.join(ids))"
    single = subprocess.run([python.path, "-c", code % 1_000_000], capture_output=True,
                            text=True, env=env, check=True).stdout.split()
    assert len(single) == len(set(single)) == 1_000_000
    assert all(TXN.match(txn) for txn in single[:1000])
    processes = [subprocess.Popen([python.path, "-c", code % 100_000], stdout=subprocess.PIPE,
                                  text=True, env=env) for _ in range(4)]
    together = [txn for process in processes for txn in process.communicate()[0].split()]
    assert len(together) == len(set(together)) == 400_000


def test_state_of_dead_or_stale_process_is_recognised(python, start_target, tmp_path):
    target = start_target(python, "agent_app.py", ["parked", "1"], env=agent_env(tmp_path))
    state = json.loads(target.ready_line)["state"]
    with open(state, "rb") as live:
        snapshot = live.read()
    target.stop()  # SIGKILL: the file stays behind
    result = run_vigil("requests", "--state-dir", tmp_path, target.pid)
    assert result.returncode == 3 and "no process with PID" in result.stderr
    # The same file presented as the state of a live process (this one): stale.
    stale = tmp_path / ("vigil-%d" % os.getpid())
    stale.write_bytes(snapshot)
    stale.chmod(0o600)
    result = run_vigil("requests", "--state-dir", tmp_path, os.getpid())
    assert result.returncode == 12 and "stale" in result.stderr, result.stderr
    result = run_vigil("requests", "--state-dir", tmp_path / "none", os.getpid())
    assert result.returncode == 12 and "has no vigil agent" in result.stderr
    # The next agent in the directory removes what dead processes left.
    dead = tmp_path / ("vigil-%d" % target.pid)
    assert dead.exists()
    start_target(python, "agent_app.py", ["parked", "1"], env=agent_env(tmp_path))
    assert not dead.exists()


def test_watchdog_survives_churning_stacks(python, start_target, tmp_path):
    env = agent_env(tmp_path, long_requests_threshold=0.001, long_requests_interval=0.001)
    target = start_target(python, "agent_app.py", ["churn", "3"], env=env)
    for _ in range(20):
        os.kill(target.pid, signal.SIGUSR2)
    out, err = target.process.communicate(timeout=120)
    assert target.process.returncode == 0, err
    assert out.decode().strip() == "survived"
    assert log_lines(str(tmp_path / "agent.log"), "thread_stacks")


CONFIGURED_APP = r"""
import json, os, signal, time, vigil
settings = vigil._vigil.settings()
with vigil.request("configured") as request:
    os.kill(os.getpid(), signal.SIGRTMIN + 3)
    deadline = time.monotonic() + 60
    lines = []
    while not lines and time.monotonic() < deadline:
        if os.path.exists(settings["log_path"]):
            with open(settings["log_path"]) as log:
                lines = [json.loads(line) for line in log]
        time.sleep(0.01)
print(json.dumps({"running": vigil.running(), "settings": settings,
                  "state": vigil._vigil.state_path(), "txn": request.txn, "lines": lines}))
"""


def test_started_by_vigil_run_with_a_config_file_and_environment(python, tmp_path):
    """`vigil run --config FILE`: the file's keys apply, VIGIL_* variables beat
    them, and a signal configured by name answers."""
    config = tmp_path / "vigil.toml"
    config.write_text('[state]\ndir = "%s"\n[log]\npath = "%s"\n[requests]\nheader = "X-Txn"\n'
                      '[signals]\nrequests = "SIGRTMIN+3"\n'
                      % (tmp_path, tmp_path / "from-file.log"))
    env = dict(os.environ, VIGIL_LOG_PATH=str(tmp_path / "agent.log"))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([VIGIL, "run", "--config", str(config), "--", python.path, "-c",
                             CONFIGURED_APP], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["running"] and seen["settings"]["header"] == "X-Txn"
    assert seen["settings"]["log_path"] == str(tmp_path / "agent.log")
    assert seen["state"].startswith(str(tmp_path))
    [line] = seen["lines"]
    assert line["event"] == "running_requests"
    assert [r["txn"] for r in line["requests"]] == [seen["txn"]]
