"""vigil.trace writing trace directories, on every interpreter: the layout,
forked children, a SIGKILL, a full disk, the ways to start it (the agent's
[trace] configuration, the existence of its directory, `vigil run --trace`),
and asyncio's waits for I/O timed precisely.

tests/targets/trace_service.py is the recording program; traces are read
back through vigil._vigil.trace_read (the TraceReader of the C++ side).
"""
import json
import os
import signal
import subprocess
import textwrap
import time

from conftest import ROOT, TARGETS, VIGIL

PACKAGE_DIR = os.path.join(ROOT, "build", "python")
SERVICE = os.path.join(TARGETS, "trace_service.py")
FLOW = os.path.join(TARGETS, "traced_pkg", "flow.py")


def environment(**extra):
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR + os.pathsep + TARGETS,
               PYTHONDONTWRITEBYTECODE="1")
    for name in [name for name in env if name.startswith("VIGIL_")]:
        del env[name]
    env.update(extra)
    return env


def read_trace(python, directory):
    """(events, error) of a trace directory, events as lists (see trace_read)."""
    code = ("import json, sys; from vigil import _vigil; "
            "print(json.dumps(_vigil.trace_read(sys.argv[1])))")
    result = subprocess.run([python.path, "-c", code, directory], env=environment(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_service(python, mode, base, **extra):
    result = subprocess.run([python.path, SERVICE, mode, str(base)], env=environment(**extra),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def functions(events):
    return [event[4] for event in events if event[2] == "call"]


def test_a_forked_child_records_into_a_directory_of_its_own(python, tmp_path):
    result = json.loads(run_service(python, "fork", tmp_path).stdout)
    parent = result["parent"]
    run = os.path.dirname(parent)
    assert os.path.basename(parent) == "service"
    assert os.path.realpath(os.path.join(tmp_path, "latest")) == os.path.realpath(run)
    child = os.path.join(run, "service-%d" % result["child"])
    assert sorted(os.listdir(run)) == sorted(["service", os.path.basename(child)])

    parent_events, error = read_trace(python, parent)
    assert error is None
    assert functions(parent_events) == ["loop_sum"] + ["recurse"] * 3
    child_events, error = read_trace(python, child)
    assert error is None
    assert functions(child_events) == ["recurse"] * 4
    assert {event[0] for event in child_events} == {result["child"]}
    with open(os.path.join(child, "trace.json"), encoding="utf-8") as meta:
        assert json.load(meta)["pid"] == result["child"]


def test_a_killed_process_loses_at_most_its_last_100_ms(python, start_target, tmp_path):
    target = start_target(python, SERVICE, ["kill", str(tmp_path)], env=environment())
    where = target.ready_line.split(" ", 1)[1]
    killed_at = time.monotonic_ns()  # CLOCK_MONOTONIC, the trace's clock
    os.kill(target.pid, signal.SIGKILL)
    target.process.wait()
    events, error = read_trace(python, where)
    # A block cut by the kill is reported, and everything before it reads.
    assert error is None or "truncated" in error
    last = max(event[7] for event in events)
    assert killed_at - last < 100_000_000, "lost %.1f ms" % ((killed_at - last) / 1e6)
    assert len(events) > 2000 * 50


def test_a_full_disk_stops_the_recording_with_one_line(python, tmp_path):
    result = run_service(python, "disk-full", tmp_path)
    assert result.stdout.split() == ["done", "stopped"]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vigil: trace recording stopped: cannot write ")
    assert "the application goes on" in lines[0]
    events, error = read_trace(python, str(tmp_path / "latest" / "service"))
    assert error is None and events  # what was written before still reads


def run_with_agent(python, tmp_path, extra_env, command=None):
    code = textwrap.dedent("""
        import json, vigil, vigil.trace
        from traced_pkg import flow
        vigil.start()  # from the VIGIL_* variables; already running under vigil run
        flow.loop_sum(5)
        print(json.dumps(vigil.trace.directory()))
    """)
    env = environment(VIGIL_STATE_DIR=str(tmp_path), VIGIL_STORE_DIR="", **extra_env)
    command = command or [python.path]
    result = subprocess.run(command + ["-c", code], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_agent_records_when_its_trace_directory_exists(python, tmp_path):
    base = tmp_path / "traces"
    settings = dict(VIGIL_TRACE_PACKAGES="traced_pkg, other",
                    VIGIL_TRACE_DIR=str(base), VIGIL_AGENT_SERVICE="shop")
    assert run_with_agent(python, tmp_path, settings) is None
    assert not base.exists()
    base.mkdir()
    where = run_with_agent(python, tmp_path, settings)
    assert os.path.dirname(os.path.dirname(where)) == str(base)
    assert os.path.basename(where) == "shop"
    events, _error = read_trace(python, where)
    assert functions(events) == ["loop_sum"]


def test_the_agent_creates_its_trace_directory_when_told(python, tmp_path):
    base = tmp_path / "made" / "here"
    where = run_with_agent(python, tmp_path, dict(
        VIGIL_TRACE_PATHS=os.path.join(TARGETS, "traced_pkg", "*"),
        VIGIL_TRACE_DIR=str(base), VIGIL_TRACE_CREATE_DIR="true"))
    assert where.startswith(str(base) + os.sep)
    events, _error = read_trace(python, where)
    assert functions(events) == ["loop_sum"]


def test_vigil_run_trace(python, tmp_path):
    base = tmp_path / "run-traces"
    where = run_with_agent(python, tmp_path, {}, command=[
        VIGIL, "run", "--trace", "traced_pkg", "--trace-dir", str(base), "--", python.path])
    assert where.startswith(str(base) + os.sep)
    events, _error = read_trace(python, where)
    # Recording from the start: the package's import is recorded too.
    assert functions(events) == ["<module>", "<module>", "loop_sum"]
    assert {event[3] for event in events if event[4] == "loop_sum"} == {FLOW}


def test_asyncio_waits_for_io_are_timed(python, tmp_path):
    """The event loop's select() runs in a precise section: the 200 ms the
    coroutine sleeps in asyncio.sleep(0.2) fall between the events around
    the wait, not over them, and the first event after it carries its own
    time."""
    where = json.loads(run_service(python, "asyncio", tmp_path).stdout)["dir"]
    events, error = read_trace(python, where)
    assert error is None
    suspended = next(index for index, event in enumerate(events)
                     if event[4] == "pause" and event[2] == "return")
    start = events[suspended][7]
    woken = next(index for index in range(suspended, len(events))
                 if events[index][7] - start > 100_000_000)
    assert events[woken][8], "the first event after the wait has its own timestamp"
    assert 199 <= (events[woken][7] - start) / 1e6 < 400
    assert (events[woken - 1][7] - start) / 1e6 < 5, "the wait is not spread before it"
