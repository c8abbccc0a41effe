"""`vigil top`: the plain table without a terminal, and the live screen in tmux."""
import os
import re
import time

from conftest import SCREEN_TIMEOUT, VIGIL, run_vigil


def test_plain_snapshots_without_a_terminal(python, start_target):
    target = start_target(python, "busy_and_sleeping.py")
    result = run_vigil("top", target.pid, "--duration", 2.5, "--interval", 1, "-n", 5)
    assert result.returncode == 0, result.stderr
    snapshots = result.stdout.strip().split("\n\n")
    assert len(snapshots) == 2
    for snapshot in snapshots:
        lines = snapshot.splitlines()
        assert lines[0].startswith("vigil top: pid %d " % target.pid)
        assert re.match(r"Threads: 3 \(1 running\)   GIL held: \d+%   Samples: \d+", lines[1]), lines[1]
        assert "%Own" in lines[2]
        own, total = re.match(r"\s*([\d.]+)%\s+([\d.]+)%", lines[3]).groups()
        assert "spin (" in lines[3] and float(own) >= 95.0, lines[3]




def test_live_screen_in_tmux(python, start_target, tmux, tmp_path):
    target = start_target(python, "busy_and_sleeping.py")
    done = str(tmp_path / "exit-status")
    tmux.run("new-session", "-d", "-s", "top", "-x", "160", "-y", "40",
             "%s top %d --interval 0.5; echo exit=$? > %s.part; mv %s.part %s; sleep 600"
             % (VIGIL, target.pid, done, done, done))
    tmux.wait_for("spin (")
    screen = tmux.screen()
    assert "vigil top: pid %d" % target.pid in screen
    assert re.search(r"Threads: 3 \(1 running\)", screen)
    tmux.run("send-keys", "-t", "top", "2")
    tmux.wait_for("(now 2)")
    tmux.run("send-keys", "-t", "top", "p")
    tmux.wait_for("[PAUSED]")
    tmux.run("send-keys", "-t", "top", "p")
    tmux.run("send-keys", "-t", "top", "q")
    deadline = time.monotonic() + SCREEN_TIMEOUT
    while not os.path.exists(done):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with open(done) as f:
        assert f.read().strip() == "exit=0"
    assert target.process.poll() is None


def test_record_shows_a_live_status_line_on_a_terminal(python, start_target, tmux, tmp_path):
    target = start_target(python, "busy_and_sleeping.py")
    out = tmp_path / "live.folded"
    tmux.run("new-session", "-d", "-s", "top", "-x", "160", "-y", "20",
             "%s record --pid %d -o %s; sleep 600" % (VIGIL, target.pid, out))
    tmux.wait_for("vigil: recording pid %d: " % target.pid)
    assert re.search(r"vigil: recording pid \d+: [\d.]+ s, \d+ samples, [\d.]+ Hz", tmux.screen())
    tmux.run("send-keys", "-t", "top", "C-c")
    tmux.wait_for("vigil: wrote %s (folded)" % out)
    # The live line was cleared before the summary: no "recording" line is left.
    assert "vigil: recording pid" not in tmux.screen()


def test_record_without_a_terminal_prints_no_status_line(python, start_target, tmp_path):
    target = start_target(python, "busy_and_sleeping.py")
    result = run_vigil("record", "--pid", target.pid, "--duration", 0.5, "-o", tmp_path / "quiet.folded")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "recording pid" not in result.stderr
