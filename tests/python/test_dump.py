"""`vigil dump` against targets with known stacks, on every interpreter found."""
import json
import os
import re

import pytest

from conftest import TARGETS, dump_json, run_vigil

LONG_DIR_PARTS = ("a" * 90, "b" * 90, "c" * 40)


def frame_key(frame, qualified):
    name = frame["qualified_name"] if qualified else frame["function"]
    return (name, os.path.realpath(frame["file"]), frame["line"])


def stacks_by_thread(threads, qualified):
    return {
        t["thread_id"]: [frame_key(f, qualified) for f in t["frames"]] for t in threads
    }


@pytest.fixture
def known(python, start_target, tmp_path):
    long_dir = os.path.join(str(tmp_path), *LONG_DIR_PARTS)
    target = start_target(python, "known_stacks.py", ["--long-dir", long_dir])
    return target, long_dir


def test_every_frame_matches_the_truth(python, known):
    target, long_dir = known
    truth = target.truth()
    dump = dump_json(target.pid)
    qualified = python.version >= (3, 11)
    expected = stacks_by_thread(truth["threads"], qualified)
    got = stacks_by_thread(dump["threads"], qualified)
    assert set(got) == set(expected)
    for thread_id, frames in expected.items():
        assert got[thread_id] == frames, "thread %#x" % thread_id
    assert len(dump["threads"]) == 30  # 28 workers, the long-path worker and main
    assert dump["python"]["version"] == "%d.%d.%d" % python.version


def test_the_interesting_frames_are_there(python, known):
    target, long_dir = known
    dump = dump_json(target.pid)
    innermost = {t["frames"][0]["function"]: t for t in dump["threads"]}
    for i in range(20):
        assert "park_%02d" % i in innermost
    recursion = innermost["recurse"]["frames"]
    assert sum(1 for f in recursion if f["function"] == "recurse") == 301
    assert innermost["key_function"]["frames"][1]["function"] == "sort_with_callback"
    assert innermost["generator"]["frames"][1]["function"] == "consume_generator"
    assert innermost["leaf_coroutine"]["frames"][1]["function"] == "outer_coroutine"
    assert "sleeper" in innermost
    unicode_frame = innermost["función_ñ"]["frames"][0]
    assert unicode_frame["file"].endswith("módulo_ünïcode.py")
    deep = innermost["deep_function"]["frames"][0]
    assert len(deep["file"]) > 200 and deep["file"].startswith(long_dir)
    if python.version >= (3, 11):
        assert innermost["park"]["frames"][0]["qualified_name"] == "Worker.park"
        assert innermost["inner"]["frames"][0]["qualified_name"] == "outer.<locals>.inner"


def test_threads_have_ids_names_and_states(python, known):
    target, _ = known
    truth = {t["thread_id"]: t for t in target.truth()["threads"]}
    dump = dump_json(target.pid)
    for thread in dump["threads"]:
        expected = truth[thread["thread_id"]]
        assert thread["name"] == expected["name"]
        assert thread["native_thread_id"] == expected["native_thread_id"]
        # Every thread is blocked on a lock or in sleep.
        assert thread["state"] == "idle"
        assert thread["holds_gil"] is False
        assert thread["consistent"] is True
    assert any(t["name"] == "MainThread" and t["native_thread_id"] == target.pid for t in dump["threads"])


def test_text_output(python, known):
    target, _ = known
    result = run_vigil("dump", target.pid)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Process %d: " % target.pid)
    assert lines[1].startswith("Python %d.%d." % python.version[:2])
    main = re.compile(r'^Thread 0x[0-9a-f]+ "MainThread" \(native %d\) idle$' % target.pid)
    assert any(main.match(line) for line in lines)
    sleeper_file = os.path.join(TARGETS, "known_stacks.py")
    assert any(re.match(r"^    sleeper \(%s:\d+\)$" % re.escape(sleeper_file), l) for l in lines)


def test_locals(python, start_target):
    target = start_target(python, "locals_target.py")
    dump = dump_json(target.pid, "--locals")
    frames = [f for t in dump["threads"] for f in t["frames"] if f["function"] == "with_locals"]
    assert len(frames) == 1
    values = {v["name"]: v for v in frames[0]["locals"]}
    assert values["number"]["argument"] is True
    assert values["number"]["value"] == "42"
    assert values["text"]["value"] == "'héllo wörld'"
    assert values["big"]["value"] == str(2**100)
    assert values["negative"]["value"] == "-7"
    assert values["ratio"]["value"] == "0.25"
    assert values["flag"]["value"] == "True"
    assert values["nothing"]["value"] == "None"
    assert values["raw"]["value"] == "b'\\x00ab'"
    assert values["pair"]["value"] == "(1, 'two')"
    assert values["items"]["value"] == "[1, 2, 3]"
    assert values["mapping"]["value"] == "{'key': 'value', 'n': 1}"
    assert values["captured"]["value"] == "'in a cell'"
    assert values["long_text"]["value"].endswith("...")
    assert len(values["long_text"]["value"]) < 100
    assert re.fullmatch(r"<Custom at 0x[0-9a-f]+>", values["custom"]["value"])
    assert values["long_list"]["value"].endswith("... (100 items)]")
    # Secrets never leave the process: by variable name and by dict key.
    assert values["db_password"]["value"] == "'***'"
    assert values["headers"]["value"] == "{'Authorization': '***', 'Accept': 'text/html'}"
    assert "hunter2" not in json.dumps(values) and "Bearer" not in json.dumps(values)
