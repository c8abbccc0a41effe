import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from interpreters import SUPPORTED  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = os.path.join(ROOT, "tests", "targets")
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
# A guard against a target that never comes up, not a synchronisation.
READY_TIMEOUT = 120


def vigil_binary():
    path = os.environ.get("VIGIL_BIN") or os.path.join(ROOT, "build", "src", "cli", "vigil")
    if not os.access(path, os.X_OK):
        pytest.exit("vigil is not built: %s (build with cmake, or set VIGIL_BIN)" % path, 2)
    return path


VIGIL = vigil_binary()


def pytest_generate_tests(metafunc):
    if "python" in metafunc.fixturenames:
        if not SUPPORTED:
            pytest.exit("no CPython 3.8+ found on this machine", 2)
        metafunc.parametrize("python", SUPPORTED, ids=[i.id for i in SUPPORTED])


class Target:
    """A Python program started for a test; it says when it is ready."""

    def __init__(self, python, script, args=(), tmp_path=None, env=None):
        self.truth_path = str(tmp_path / ("truth-%s.json" % os.path.basename(script))) if tmp_path else None
        read_fd, write_fd = os.pipe()
        environment = dict(os.environ, VIGIL_READY_FD=str(write_fd), PYTHONDONTWRITEBYTECODE="1")
        if self.truth_path:
            environment["VIGIL_TRUTH"] = self.truth_path
        environment.update(env or {})
        self.process = subprocess.Popen(
            [python.path, os.path.join(TARGETS, script), *args],
            env=environment,
            pass_fds=(write_fd,),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(write_fd)
        self.ready_line = self._wait_ready(read_fd)
        self.pid = self.process.pid

    def _wait_ready(self, fd):
        with os.fdopen(fd, "rb") as pipe:
            readable, _, _ = select.select([pipe], [], [], READY_TIMEOUT)
            line = pipe.readline().decode().strip() if readable else ""
        if not line:
            self.stop()
            raise RuntimeError("target never became ready: %s" % self.process.stderr.read().decode())
        return line

    def truth(self):
        with open(self.truth_path, encoding="utf-8") as f:
            return json.load(f)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_target(tmp_path):
    started = []

    def start(python, script, args=(), env=None):
        target = Target(python, script, args, tmp_path, env)
        started.append(target)
        return target

    yield start
    for target in started:
        target.stop()


def run_vigil(*args, env=None, check=False, user=None):
    command = [VIGIL, *map(str, args)]
    if user is not None:
        command = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups", *command]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError("vigil %s failed (%d): %s" % (args, result.returncode, result.stderr))
    return result


def dump_json(pid, *extra):
    result = run_vigil("dump", "--json", pid, *extra, check=True)
    return json.loads(result.stdout)


# A guard against a screen that never shows up, not a synchronisation.
SCREEN_TIMEOUT = 60


class Tmux:
    def __init__(self, name):
        self.socket = "vigil-test-%d-%s" % (os.getpid(), name)

    def run(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "top").stdout

    def wait_for(self, text):
        deadline = time.monotonic() + SCREEN_TIMEOUT
        while text not in self.screen():
            assert time.monotonic() < deadline, "never showed %r:\n%s" % (text, self.screen())
            time.sleep(0.05)  # polling the screen for a condition, not waiting for time to pass

    def kill(self):
        self.run("kill-server", check=False)


@pytest.fixture
def tmux(request):
    session = Tmux(request.node.name[-20:].replace("[", "").replace("]", ""))
    yield session
    session.kill()
