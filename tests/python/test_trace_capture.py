"""The execution recorder's capture side (vigil.trace) on every interpreter.

tests/targets/trace_program.py runs tests/targets/traced_pkg/flow.py (known
control flow: loops, branches, recursion, exceptions caught and uncaught,
generators, three asyncio tasks taking turns, two threads) once under
vigil.trace and once under a pure-Python sys.settrace reference restricted
to the same package: per thread, the sequences of (task, kind, file, line)
must be the same, step by step. Tasks are compared by the order in which
they first appear (the recorder names a task by its outermost coroutine,
the reference by asyncio.current_task()).
"""
import json
import os
import subprocess
import textwrap

import pytest

from conftest import ROOT, TARGETS

PACKAGE_DIR = os.path.join(ROOT, "build", "python")
PROGRAM = os.path.join(TARGETS, "trace_program.py")
TRACED_DIR = os.path.join(TARGETS, "traced_pkg")
FLOW = os.path.join(TRACED_DIR, "flow.py")
STEPS = ("call", "line", "return", "exception")

_references = {}


def environment():
    return dict(os.environ, PYTHONPATH=PACKAGE_DIR + os.pathsep + TARGETS,
                PYTHONDONTWRITEBYTECODE="1")


def run_program(python, recorder, selection, tmp_path):
    output = tmp_path / ("%s-%s.json" % (recorder, selection))
    result = subprocess.run([python.path, PROGRAM, recorder, selection, str(output)],
                            env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with open(output, encoding="utf-8") as recording:
        return json.load(recording)


def run_code(python, code, tmp_path=None):
    """Runs code (which prints JSON last) with vigil and the targets importable;
    TRACES in the code is a directory for its traces."""
    code = textwrap.dedent(code).replace("TRACES", repr(str(tmp_path)))
    result = subprocess.run([python.path, "-c", code], env=environment(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def reference(python, tmp_path):
    if python.path not in _references:
        _references[python.path] = run_program(python, "reference", "packages", tmp_path)
    return _references[python.path]


def steps_per_thread(recording):
    """{thread name: [(task label, kind, file, line)]}; a task's label is the
    order in which it first appears on its thread (no task: 0)."""
    names = recording["threads"]
    threads = {}
    for thread, task, kind, file, line, _time in recording["events"]:
        if kind not in STEPS:
            continue
        labels, steps = threads.setdefault(names.get(str(thread), thread), ({0: 0}, []))
        label = labels.setdefault(task, len(labels))
        steps.append((label, kind, os.path.relpath(file, TARGETS) if file else None, line))
    return {name: steps for name, (_labels, steps) in threads.items()}


def assert_same_steps(expected, actual):
    assert sorted(actual) == sorted(expected), "threads differ"
    for name in expected:
        want, got = expected[name], actual[name]
        for index in range(max(len(want), len(got))):
            if index >= len(want) or index >= len(got) or want[index] != got[index]:
                context = range(max(0, index - 5), index + 5)
                table = "\n".join("%4d  %-40s %s" % (i, want[i] if i < len(want) else "-",
                                                     got[i] if i < len(got) else "-")
                                  for i in context)
                pytest.fail("thread %s: step %d differs (reference | vigil), %d and %d steps:\n%s"
                            % (name, index, len(want), len(got), table))


def test_reference_covers_the_program(python, tmp_path):
    steps = steps_per_thread(reference(python, tmp_path))
    assert sorted(steps) == ["MainThread", "worker-0", "worker-1"]
    main = steps["MainThread"]
    assert {kind for _task, kind, _file, _line in main} == set(STEPS)
    assert len({task for task, _kind, _file, _line in main}) == 5  # none, main, three workers
    assert all(file == os.path.join("traced_pkg", "flow.py") for _t, _k, file, _l in main)


@pytest.mark.parametrize("selection", ["packages", "paths"])
def test_replays_as_settrace_saw_it(python, tmp_path, selection):
    expected = steps_per_thread(reference(python, tmp_path))
    recording = run_program(python, "vigil", selection, tmp_path)
    assert_same_steps(expected, steps_per_thread(recording))
    assert recording["outcome"] == reference(python, tmp_path)["outcome"]


def test_tasks_switch_as_they_take_turns(python, tmp_path):
    recording = run_program(python, "vigil", "packages", tmp_path)
    main = [event for event in recording["events"]
            if recording["threads"][str(event[0])] == "MainThread"]
    switches = [event[1] for event in main if event[2] == "task"]
    # worker a, b, c each start, then take turns at every sleep(0)
    assert len(set(switches) - {0}) == 4
    appended = [event for event in main
                if event[2] == "line" and event[4] == line_of("log.append((name, step))")]
    order = [task for _thread, task, *_rest in appended]
    labels = {task: index for index, task in enumerate(dict.fromkeys(order))}
    assert [labels[task] for task in order] == [0, 1, 2, 0, 1, 2, 0, 2, 2]


def line_of(text):
    with open(FLOW, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if text in line:
                return number
    raise AssertionError(text)


def test_code_outside_the_selection_is_not_recorded(python, tmp_path):
    result = run_code(python, """
        import json, vigil.trace
        from trace_program import read_trace
        from traced_pkg import flow
        where = vigil.trace.start(packages=["traced_pkg.nothing_here", "untraced"], dir=TRACES)
        flow.run()
        vigil.trace.flush()
        written = vigil.trace.stats()["events"]
        vigil.trace.stop()
        print(json.dumps([read_trace(where), written]))
    """, tmp_path)
    assert result == [[], 0]


def test_only_the_selected_files(python, tmp_path):
    recording = run_program(python, "vigil", "packages", tmp_path)
    files = {event[3] for event in recording["events"] if event[2] in STEPS}
    assert files == {FLOW}


def test_precise_timestamping_times_its_section(python, tmp_path):
    events = run_code(python, """
        import json, vigil.trace
        from vigil import _vigil
        from traced_pkg import flow
        where = vigil.trace.start(packages=["traced_pkg"], dir=TRACES)
        flow.loop_sum(40)
        with vigil.trace.precise_timestamping():
            flow.recurse(3)
        flow.loop_sum(40)
        vigil.trace.stop()
        print(json.dumps(_vigil.trace_read(where)[0]))
    """, tmp_path)
    section = [index for index, event in enumerate(events) if event[4] == "recurse"]
    inside = events[section[0]:section[-1] + 1]
    assert all(event[8] for event in inside), "every event in the section is timed"
    times = [event[7] for event in inside]
    assert times == sorted(times)
    assert [event[2] for event in inside].count("call") == 4  # recurse(3) .. recurse(0)
    # Outside, a stamp every ~50 events (and at the switches): most are interpolated.
    outside = events[:section[0]] + events[section[-1] + 1:]
    assert sum(1 for event in outside if not event[8]) > len(outside) // 2


def test_frames_running_at_the_start(python, tmp_path):
    """The recording begins with a call for each selected frame already on a
    stack: the one that starts it, and a thread parked in one."""
    result = run_code(python, """
        import json, threading, vigil.trace
        from trace_program import read_trace
        from traced_pkg import flow
        ready, go = threading.Event(), threading.Event()
        thread = threading.Thread(target=flow.parked, args=(ready, go))
        thread.start()
        ready.wait()
        def start():
            global where
            where = vigil.trace.start(packages=["traced_pkg"], dir=TRACES)
            go.set()
        flow.record_inside(start, lambda: (thread.join(), vigil.trace.stop()))
        print(json.dumps([read_trace(where), thread.native_id]))
    """, tmp_path)
    events, parked_thread = result
    steps = {}
    for thread, _task, kind, file, line, _time in events:
        if kind in STEPS:
            steps.setdefault(thread == parked_thread, []).append((kind, line))
    loop_sum = line_of("def loop_sum")
    assert steps[False][:3] == [("call", line_of("start()  # the recording")),
                                ("line", line_of("total = loop_sum(2)")), ("call", loop_sum)]
    assert steps[False][-1] == ("line", line_of("    stop()"))
    assert steps[True][:3] == [("call", line_of("go.wait()  # the recording")),
                               ("line", line_of("return loop_sum(2)")), ("call", loop_sum)]
    assert steps[True][-1] == ("return", None)


def test_one_recording_at_a_time(python, tmp_path):
    result = run_code(python, """
        import json, vigil.trace
        vigil.trace.start(packages=["traced_pkg"], dir=TRACES)
        try:
            vigil.trace.start(packages=["traced_pkg"], dir=TRACES)
        except RuntimeError as error:
            message = str(error)
        stopped = [vigil.trace.stop(), vigil.trace.stop()]
        vigil.trace.start(packages=["traced_pkg"], dir=TRACES)
        print(json.dumps([message, stopped, vigil.trace.stop()]))
    """, tmp_path)
    assert result == ["vigil.trace is already recording", [True, False], True]


def test_leaves_other_hooks_as_it_found_them(python, tmp_path):
    """Before 3.12 a recording takes threading.settrace's hook for its new
    threads and gives it back; on 3.12+ it takes a sys.monitoring tool id
    (PROFILER_ID, else 3 or 4) and frees it."""
    result = run_code(python, """
        import json, sys, threading, vigil.trace
        def hook(*args):
            return None
        threading.settrace(hook)
        tools = []
        if sys.version_info >= (3, 12):
            sys.monitoring.use_tool_id(sys.monitoring.PROFILER_ID, "someone else")
        vigil.trace.start(packages=["traced_pkg"], dir=TRACES)
        if sys.version_info >= (3, 12):
            tools = [sys.monitoring.get_tool(tool) for tool in (2, 3, 4)]
        vigil.trace.stop()
        if sys.version_info >= (3, 12):
            tools.append(sys.monitoring.get_tool(3))
        print(json.dumps([threading._trace_hook is hook, tools]))
    """, tmp_path)
    if python.version >= (3, 12):
        assert result == [True, ["someone else", "vigil", None, None]]
    else:
        assert result == [True, []]


def test_no_tool_id_left(python, tmp_path):
    if python.version < (3, 12):
        pytest.skip("sys.monitoring is 3.12+")
    message = run_code(python, """
        import json, sys, vigil.trace
        for tool in (2, 3, 4):
            sys.monitoring.use_tool_id(tool, "someone else")
        try:
            vigil.trace.start(packages=["traced_pkg"], dir=TRACES)
        except RuntimeError as error:
            print(json.dumps(str(error)))
    """, tmp_path)
    assert "tool ids 2-4 are all in use" in message


def test_a_generator_across_recordings(python, tmp_path):
    """A generator suspended while a recording without its package ran (its
    frame's line events off before 3.12, its resume point disabled on 3.12+)
    is recorded whole by the next recording that selects it."""
    steps = run_code(python, """
        import json, vigil.trace
        from trace_program import read_trace
        from traced_pkg import flow
        vigil.trace.start(packages=["untraced_helper"], dir=TRACES)
        numbers = flow.countdown(3)
        next(numbers)
        vigil.trace.stop()
        where = vigil.trace.start(packages=["traced_pkg"], dir=TRACES)
        rest = list(numbers)
        vigil.trace.stop()
        print(json.dumps([[event[2], event[4]] for event in read_trace(where)
                          if event[2] in ("call", "line", "return")]))
    """, tmp_path)
    kinds = [kind for kind, _line in steps]
    assert steps[0] == ["call", line_of("yield count")]
    assert steps[1] == ["line", line_of("count -= 1")]
    assert kinds.count("call") == kinds.count("return") == 3
    assert steps[-1] == ["return", None]
