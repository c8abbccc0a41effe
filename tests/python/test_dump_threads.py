"""Thread flags, --blocking, and dumping a target that never holds still."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import VIGIL, dump_json, run_vigil

STRESS_DUMPS = int(os.environ.get("VIGIL_STRESS_DUMPS", "2000"))


def by_name(dump):
    return {t["name"]: t for t in dump["threads"]}


def test_busy_thread_holds_the_gil_and_sleepers_are_idle(python, start_target):
    target = start_target(python, "busy_and_sleeping.py")
    dumps = [by_name(dump_json(target.pid)) for _ in range(10)]
    for threads in dumps:
        assert threads["sleeper"]["state"] == "idle"
        assert threads["sleeper"]["holds_gil"] is False
        assert threads["MainThread"]["state"] == "idle"
        assert threads["MainThread"]["holds_gil"] is False
        assert threads["busy"]["frames"][0]["function"] == "spin"
    # The spinning thread is alone in wanting the GIL: it never lets it go, but
    # the kernel may deschedule it, so most dumps, not all, see it running.
    assert sum(t["busy"]["holds_gil"] for t in dumps) >= 9
    assert sum(t["busy"]["state"] == "running" for t in dumps) >= 5


def test_blocking_pauses_and_resumes(python, start_target):
    target = start_target(python, "busy_and_sleeping.py")
    dump = dump_json(target.pid, "--blocking")
    assert dump["snapshot"]["blocking"] is True
    assert by_name(dump)["busy"]["frames"][0]["function"] == "spin"
    assert_running_again(target.pid)


def task_states(pid):
    states = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            states[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
    return states


def busy_cpu_ticks(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def assert_running_again(pid):
    assert "t" not in task_states(pid).values(), "a thread was left stopped"
    # The busy thread must make progress again: its CPU time keeps growing.
    before = busy_cpu_ticks(pid)
    deadline = time.monotonic() + 60
    while busy_cpu_ticks(pid) == before:
        assert time.monotonic() < deadline, "the target did not run again"
        os.sched_yield()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_blocking_resumes_the_target_when_vigil_is_interrupted(python, start_target, stop_signal):
    target = start_target(python, "busy_and_sleeping.py")
    env = dict(os.environ, VIGIL_TEST_HOLD_PAUSE="1")
    vigil = subprocess.Popen(
        [VIGIL, "dump", "--blocking", str(target.pid)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert vigil.stderr.readline().strip() == "vigil: paused, waiting for a signal"
    assert set(task_states(target.pid).values()) == {"t"}, "every thread should be stopped"
    vigil.send_signal(stop_signal)
    vigil.wait(timeout=60)
    assert vigil.returncode == -stop_signal
    assert_running_again(target.pid)


def test_stress_dumps_of_a_churning_target(python, start_target):
    target = start_target(python, "churn.py")
    complete = failures = 0
    problems = []
    for _ in range(STRESS_DUMPS):
        result = run_vigil("dump", "--json", target.pid)
        assert result.returncode in (0, 8), result.stderr  # 8: inconsistent, reported as such
        if result.returncode == 0:
            dump = json.loads(result.stdout)
            if all(valid_thread(t) for t in dump["threads"]):
                complete += 1
                continue
            problems.append(dump)
        failures += 1
        assert target.process.poll() is None, "the target died"
    assert target.process.poll() is None
    assert complete >= 0.99 * STRESS_DUMPS, (failures, problems[:1])


def valid_thread(thread):
    if not thread["consistent"]:
        return False
    for frame in thread["frames"]:
        if not frame["file"].endswith(".py") or frame["line"] <= 0 or not frame["function"]:
            return False
    return True
