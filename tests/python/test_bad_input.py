"""Every bad input gets one clear line on stderr and its documented exit code."""
import os
import subprocess

import pytest

from conftest import VIGIL, Target, run_vigil
from interpreters import TOO_OLD

NO_SUCH_PROCESS, NOT_PYTHON, TOO_OLD_CODE, PERMISSION, EXITED, USAGE = 3, 4, 5, 6, 7, 2


def assert_one_line(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vigil: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


def test_no_such_process():
    finished = subprocess.Popen(["true"])
    finished.wait()
    result = run_vigil("dump", finished.pid)
    assert_one_line(result, NO_SUCH_PROCESS, "no process with PID %d" % finished.pid)


def test_not_python():
    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        result = run_vigil("dump", sleeper.pid)
        assert_one_line(result, NOT_PYTHON, "not a Python interpreter", "sleep")
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("old", TOO_OLD, ids=[i.id for i in TOO_OLD])
def test_python_older_than_3_8(old, tmp_path):
    target = Target(old, "wait_forever.py", tmp_path=None)
    try:
        result = run_vigil("dump", target.pid)
        version = "%d.%d" % old.version[:2]
        assert_one_line(result, TOO_OLD_CODE, "Python %s" % version, "3.8 and later")
    finally:
        target.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run vigil as another user")
def test_permission_denied(python, start_target):
    target = start_target(python, "wait_forever.py")
    result = run_vigil("dump", target.pid, user=65534)
    assert_one_line(result, PERMISSION, "not allowed", "CAP_SYS_PTRACE", "ptrace_scope")


def test_target_exits_while_being_read(python, start_target):
    target = start_target(python, "wait_forever.py")
    env = dict(os.environ, VIGIL_TEST_HOLD_BEFORE_SNAPSHOT="1")
    vigil = subprocess.Popen(
        [VIGIL, "dump", str(target.pid)], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert "waiting for a line" in vigil.stderr.readline()
    target.stop()
    out, err = vigil.communicate("\n", timeout=60)
    assert vigil.returncode == EXITED, err
    assert err.strip().splitlines() == ["vigil: process %d exited while it was being read" % target.pid]


@pytest.mark.parametrize("args", [[], ["dump"], ["dump", "notapid"], ["dump", "1", "--no-such-flag"], ["explode"]])
def test_usage_errors(args):
    result = subprocess.run([VIGIL, *args], capture_output=True, text=True)
    assert result.returncode == USAGE, result.stderr
    assert result.stderr.strip()
