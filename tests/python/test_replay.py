"""vigil replay: the debugger over an execution trace.

Traces come from vigil_write_known_trace (tests/cpp/known_trace.h: two
threads of a small program, recursion, an exception, every event with its
own timestamp and no two at the same time, so every stop is known) and, on
every interpreter, from tests/targets/replay_target.py under vigil.trace,
replayed while it runs.
"""
import json
import os
import re
import select
import shutil
import struct
import subprocess
import time

import pytest

from conftest import READY_TIMEOUT, ROOT, SCREEN_TIMEOUT, TARGETS, VIGIL, run_vigil

BUILD = os.environ.get("VIGIL_BUILD_DIR") or os.path.join(ROOT, "build")
WRITE_KNOWN_TRACE = os.path.join(BUILD, "tests", "cpp", "vigil_write_known_trace")
PACKAGE_DIR = os.path.join(BUILD, "python")
ISO_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d"
EVENT_LINE = re.compile(r"(%s) (\d+) (\d+) (call|line|return|exception|task) (\d+) (\S+) (.+):(\d+)$"
                        % ISO_TIME)


def write_known_trace(base, *args):
    if not os.access(WRITE_KNOWN_TRACE, os.X_OK):
        pytest.fail("not built: %s (ninja -C build vigil_write_known_trace)" % WRITE_KNOWN_TRACE)
    return subprocess.Popen([WRITE_KNOWN_TRACE, str(base), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """A base directory holding the whole known trace (its writer has ended)."""
    base = tmp_path_factory.mktemp("traces")
    writer = write_known_trace(base)
    _out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    return str(base)


def parse(text):
    """The stops of the text command mode as dicts (stack: its lines), and
    the lines between them (notes, errors)."""
    stops, messages, stop = [], [], None
    for line in text.splitlines():
        if line.startswith("stop "):
            stop = {"stop": line}
            stops.append(stop)
        elif not line:
            stop = None
        elif stop is None:
            messages.append(line)
        elif line == "stack:":
            stop["stack"] = []
        elif "stack" in stop:
            stop["stack"].append(line)
        else:
            key, _, value = line.partition(": ")
            stop[key] = value
    return stops, messages


def where(stop):
    """"101 line main:3 d1": thread, event, function:line, depth."""
    return "%s %s %s:%s d%s" % (stop["thread"], stop["event"], stop["function"], stop["line"],
                               stop["depth"])


def replay(*args, input=None):
    command = [VIGIL, "replay", *map(str, args)]
    return subprocess.run(command, input=input, capture_output=True, text=True, timeout=120)


def test_commands_step_next_continue_and_back(known, tmp_path):
    commands = tmp_path / "commands"
    commands.write_text("\n".join([
        "n", "n", "n", "N", "s",
        "# comments and blank lines are skipped", "",
        "b prog.py:13", "b worker.py:9", "c", "c", "u", "d", "C", "S",
        "t", "f fail", "cl", "c", "q", "n",
    ]) + "\n")
    result = replay(known, "--commands", commands)
    assert result.returncode == 0, result.stderr
    stops, messages = parse(result.stdout)
    assert [(stop["stop"], where(stop)) for stop in stops if stop["stop"] != "stop 12: t"] == [
        ("stop 0: start", "101 call main:1 d1"),
        ("stop 1: n", "101 line main:2 d1"),
        ("stop 2: n", "101 line main:3 d1"),
        ("stop 3: n", "101 line main:4 d1"),  # over the recursion
        ("stop 4: N", "101 line main:3 d1"),
        ("stop 5: s", "101 call fact:10 d2"),
        ("stop 6: c", "202 line handle:9 d2"),  # the other thread's breakpoint comes first
        ("stop 7: c", "101 line fact:13 d4"),
        ("stop 8: u", "101 line fact:13 d4"),
        ("stop 9: d", "101 line fact:13 d4"),
        ("stop 10: C", "202 line handle:9 d2"),
        ("stop 11: S", "202 call handle:8 d2"),
        ("stop 13: f fail", "101 call fail:20 d2"),
        ("stop 14: c", "101 return main:8 d1"),
    ]
    assert stops[12]["thread"] == "101"
    assert messages == [
        "note: breakpoint 1 at prog.py:13", "note: breakpoint 2 at worker.py:9",
        "note: breakpoint 2 at worker.py:9", "note: breakpoint 1 at prog.py:13",
        "note: breakpoint 2 at worker.py:9", "note: all breakpoints cleared",
        "note: no breakpoint hit: at the last event of the trace",
    ]
    deep, up = stops[7], stops[8]
    assert deep["file"] == os.path.join(known, "src", "prog.py")
    assert deep["source"] == "    return 1"
    assert deep["stack"] == ["> #0 fact %s:13" % deep["file"], "  #1 fact %s:12" % deep["file"],
                             "  #2 fact %s:12" % deep["file"], "  #3 main %s:3" % deep["file"]]
    assert (up["frame"], up["source"]) == ("1", "        return n * fact(n - 1)")
    assert up["stack"][1].startswith("> #1 fact")
    assert re.fullmatch(ISO_TIME, deep["time"])
    assert int(deep["time_ns"]) > int(stops[6]["time_ns"]) > int(stops[0]["time_ns"])


def test_json_from_stdin_and_a_bad_command(known):
    result = replay(known, "--json", input="b prog.py:13\nc\nj -1h\nnope\nn\n")
    assert result.returncode == 2, result.stderr  # a command could not be done
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [sorted(line) for line in lines[1:2]] == [["command", "note"]]
    start, hit, back = (line for line in lines if "stop" in line and line["stop"] < 3)
    assert hit == {
        "stop": 1, "command": "c", "event": "line", "thread": 101, "task": 0,
        "time": hit["time"], "time_ns": hit["time_ns"], "monotonic_ns": hit["monotonic_ns"],
        "precise": True, "function": "fact", "file": os.path.join(known, "src", "prog.py"),
        "line": 13, "depth": 4, "frame": 0, "source": "    return 1",
        "stack": [{"function": "fact", "file": hit["file"], "line": line} for line in (13, 12, 12)]
        + [{"function": "main", "file": hit["file"], "line": 3}],
    }
    assert re.fullmatch(ISO_TIME, hit["time"])
    assert hit["time_ns"] - start["time_ns"] == hit["monotonic_ns"] - start["monotonic_ns"] > 0
    # An hour back, before the trace: the thread's first event.
    assert (back["command"], back["line"], back["event"]) == ("j -1h", 1, "call")
    assert lines[-2] == {"error": 'unknown command "nope" (h lists the commands)', "command": "nope"}
    assert lines[-1]["command"] == "n"  # the commands go on after a bad one


def test_events_in_time_order_as_text_and_json(known):
    text = replay(known, "--events")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 40
    fields = [EVENT_LINE.match(line) for line in lines]
    assert all(fields), lines
    assert [(m.group(2), m.group(4), m.group(6), m.group(8)) for m in fields[:7]] == [
        ("101", "call", "main", "1"), ("101", "line", "main", "2"), ("101", "line", "main", "3"),
        ("202", "call", "work", "3"), ("202", "line", "work", "4"), ("202", "line", "work", "5"),
        ("101", "call", "fact", "10")]
    assert fields[-1].group(7) == os.path.join(known, "src", "prog.py")
    assert sorted(line[:35] for line in lines) == [line[:35] for line in lines]
    events = [json.loads(line) for line in replay(known, "--events", "--json").stdout.splitlines()]
    assert [(str(e["thread"]), e["event"], e["function"], str(e["line"]), str(e["depth"]))
            for e in events] == [(m.group(2), m.group(4), m.group(6), m.group(8), m.group(5))
                                 for m in fields]
    assert all(e["precise"] for e in events)
    monotonic = [e["monotonic_ns"] for e in events]
    assert monotonic == sorted(monotonic) and len(set(monotonic)) == 40


def test_directories_that_hold_no_single_trace(known, tmp_path):
    missing = replay(tmp_path / "missing", "--events")
    assert missing.returncode == 9
    assert missing.stderr == "vigil: %s: no such directory\n" % (tmp_path / "missing")
    empty = replay(tmp_path, "--events")
    assert empty.returncode == 9 and "holds no trace" in empty.stderr
    assert len(empty.stderr.splitlines()) == 1
    base = tmp_path / "base"
    shutil.copytree(known, base, symlinks=True)
    run = os.path.realpath(base / "latest")
    shutil.copytree(os.path.join(run, "prog"), os.path.join(run, "prog-4242"))
    several = replay(base, "--events")
    assert several.returncode == 2
    assert "holds the traces of 2 processes (prog, prog-4242): give one, such as %s/prog" % (
        base / "latest") in several.stderr
    chosen = replay(base / "latest" / "prog-4242", "--events")
    assert chosen.returncode == 0 and len(chosen.stdout.splitlines()) == 40
    no_file = replay(known, "--commands", tmp_path / "nothing")
    assert no_file.returncode == 9 and "cannot read" in no_file.stderr


def index_entries(process_dir):
    """The index of the first segment: (block number, offset, size) by number."""
    with open(os.path.join(process_dir, "events-000001.vti"), "rb") as index:
        data = index.read()[16:]
    entries = [struct.unpack_from("<QqqQI", data, at) for at in range(0, len(data), 48)]
    return {number: (offset, size) for number, _first, _last, offset, size in entries}


@pytest.mark.parametrize("how,intact", [("corrupt", 15), ("truncate", 21)])
def test_a_damaged_trace_replays_up_to_the_bad_block(known, tmp_path, how, intact):
    base = tmp_path / "base"
    shutil.copytree(known, base, symlinks=True)
    process = str(base / "latest" / "prog")
    segment = os.path.join(process, "events-000001.vtr")
    if how == "corrupt":  # a byte of block 3's payload
        offset, size = index_entries(process)[3]
        with open(segment, "r+b") as data:
            data.seek(offset + size - 3)
            byte = data.read(1)
            data.seek(offset + size - 3)
            data.write(bytes([byte[0] ^ 0x5A]))
        why = r"block 3 at offset %d is corrupt: bad payload checksum; the 3 blocks" % offset
    else:  # block 5 cut in the middle, as by a crash of its writer
        offset, size = index_entries(process)[5]
        os.truncate(segment, offset + size // 2)
        why = r"block 5 at offset %d is truncated: %d of its \d+ bytes are there .*; the 5 blocks" % (
            offset, size // 2)
    whole = replay(known, "--events").stdout.splitlines()
    result = replay(base, "--events")
    assert result.returncode == 9
    assert re.fullmatch(r"vigil: warning: %s: %s written before it are intact: replaying those\n"
                        % (re.escape(segment), why), result.stderr), result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == intact
    assert [line.split(" ", 1)[1] for line in lines] == [
        line.split(" ", 1)[1] for line in whole if line in lines]
    commands = replay(base, "--json", input="f fail\nc\n")
    assert commands.returncode == 9
    stops = [json.loads(line) for line in commands.stdout.splitlines()]
    assert stops[1] == {"note": "no later call of fail", "command": "f fail"}
    assert stops[-1]["monotonic_ns"] == max(stop.get("monotonic_ns", 0) for stop in stops)


class Output:
    """Lines of a child's stdout, each awaited at most READY_TIMEOUT (a guard
    against a hang, not a synchronisation)."""

    def __init__(self, pipe):
        self.fd = pipe.fileno()
        self.buffer = b""

    def line(self):
        while b"\n" not in self.buffer:
            readable, _, _ = select.select([self.fd], [], [], READY_TIMEOUT)
            assert readable, "no output within %d s" % READY_TIMEOUT
            chunk = os.read(self.fd, 65536)
            assert chunk, "the output ended"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def stop(self):
        """The lines up to the end of the next stop."""
        lines = []
        while not lines or lines[-1]:
            lines.append(self.line())
        return parse("\n".join(lines))


def test_a_live_trace_replays_what_is_written_and_g_reloads(tmp_path):
    writer = write_known_trace(tmp_path, "--live")
    viewer = None
    try:
        ready = Output(writer.stdout).line()
        assert ready.startswith("ready ")
        viewer = subprocess.Popen([VIGIL, "replay", str(tmp_path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = Output(viewer.stdout)

        def send(command):
            viewer.stdin.write(command.encode() + b"\n")
            viewer.stdin.flush()

        assert where(out.stop()[0][0]) == "101 call main:1 d1"
        send("c")
        stops, messages = out.stop()
        assert messages == ["note: no breakpoint hit: at the last event of the trace"]
        assert where(stops[0]) == "101 line fact:13 d4"  # the last event written so far
        writer.stdin.write(b"\n")
        writer.stdin.flush()
        assert Output(writer.stdout).line() == "more"
        send("g")
        assert out.line() == "note: 22 new events"
        send("c")
        assert where(out.stop()[0][0]) == "101 return main:8 d1"
        viewer.stdin.close()
        assert viewer.wait(timeout=60) == 0, viewer.stderr.read()
    finally:
        for process in (viewer, writer):
            if process and process.poll() is None:
                process.kill()
                process.wait()


def test_a_running_python_program_is_replayed_as_recorded(python, start_target, tmp_path):
    target = start_target(python, "replay_target.py", [str(tmp_path)],
                          env={"PYTHONPATH": PACKAGE_DIR + os.pathsep + TARGETS})
    assert target.ready_line.startswith(str(tmp_path))
    flow = os.path.join(TARGETS, "traced_pkg", "flow.py")
    result = replay(tmp_path, "--json", input="b flow.py:32\nc\nf fail\nf fail\nf fail\n")
    assert result.returncode == 0, result.stderr
    stops = [line for line in map(json.loads, result.stdout.splitlines()) if "stop" in line]
    base_case = stops[1]
    assert (base_case["function"], base_case["file"], base_case["line"]) == ("recurse", flow, 32)
    assert base_case["source"] == "        return 0"
    assert [(frame["function"], frame["line"]) for frame in base_case["stack"]] == [
        ("recurse", 32), ("recurse", 33), ("recurse", 33), ("recurse", 33)]
    assert base_case["thread"] == target.pid  # the main thread's native id is the PID
    calls = stops[2:]
    assert [(stop["event"], stop["function"]) for stop in calls] == [("call", "fail")] * 2
    assert [frame["function"] for frame in calls[0]["stack"]] == ["fail", "caught"]
    events = replay(tmp_path, "--events", "--json")
    assert events.returncode == 0, events.stderr
    called = [e["function"] for e in map(json.loads, events.stdout.splitlines()) if e["event"] == "call"]
    assert called.count("recurse") == 4 and called.count("fail") == 2
    assert target.process.poll() is None  # replayed while it runs


def test_the_screen_in_tmux(known, tmux, tmp_path):
    done = str(tmp_path / "exit-status")
    tmux.run("new-session", "-d", "-s", "top", "-x", "150", "-y", "40",
             "%s replay %s; echo exit=$? > %s.part; mv %s.part %s; sleep 600"
             % (VIGIL, known, done, done, done))
    tmux.wait_for("vigil replay: prog (pid")
    screen = tmux.screen()
    assert "thread 101 (1 of 2)" in screen
    assert ">     1  def main():" in screen
    assert "> #0 main %s/src/prog.py:1" % known in screen
    tmux.run("send-keys", "-t", "top", "n")
    tmux.wait_for(">     2      x = 3")
    tmux.run("send-keys", "-t", "top", "s")
    tmux.wait_for(">     3      total = fact(x)")
    tmux.run("send-keys", "-t", "top", "b")
    tmux.run("send-keys", "-t", "top", "prog.py:13", "Enter")
    tmux.wait_for("breakpoint 1 at prog.py:13")
    tmux.run("send-keys", "-t", "top", "c")
    tmux.wait_for(">    13      return 1")
    screen = tmux.screen()
    assert "  #3 main %s/src/prog.py:3" % known in screen
    assert "line fact depth 4" in screen
    tmux.run("send-keys", "-t", "top", "u")
    tmux.wait_for(">    12          return n * fact(n - 1)")
    tmux.run("send-keys", "-t", "top", "q")
    deadline = time.monotonic() + SCREEN_TIMEOUT
    while not os.path.exists(done):
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling for the exit status file, not waiting for time to pass
    with open(done) as f:
        assert f.read().strip() == "exit=0"
