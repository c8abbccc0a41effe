"""`vigil record`: correctness of the shares, the filters, the formats, and
what happens when the target goes away — on every interpreter found."""
import collections
import gzip
import json
import os
import re
import signal
import subprocess

import pytest

from conftest import ROOT, TARGETS, VIGIL, dump_json, run_vigil

SCHEMA = os.path.join(ROOT, "tests", "data", "speedscope-file-format-schema.json")


def folded(path):
    """{stack tuple, outermost first: count}"""
    stacks = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, count = line.rstrip("\n").rsplit(" ", 1)
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def function_of(label):
    return label.split(" (", 1)[0]


def shares_of(stacks, names):
    """Share of the samples under each of names (each sample under one)."""
    counts = collections.Counter()
    for stack, count in stacks.items():
        under = [function_of(label) for label in stack if function_of(label) in names]
        if under:
            counts[under[-1]] += count
    total = sum(counts.values())
    return {name: 100.0 * counts[name] / total for name in names}, total


def record(*args, env=None, check=True):
    result = subprocess.run([VIGIL, "record", *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def summary_numbers(stderr):
    match = re.search(r"vigil: (\d+) samples in ([\d.]+) s, ([\d.]+) Hz achieved of ([\d.]+) Hz asked "
                      r"\((\d+) late, (\d+) missed rounds\); ([\d.]+)% invalid samples", stderr)
    assert match, stderr
    samples, seconds, achieved, asked, late, missed, invalid = match.groups()
    return {"samples": int(samples), "seconds": float(seconds), "achieved": float(achieved),
            "invalid": float(invalid), "missed": int(missed)}


@pytest.mark.parametrize("rate,seconds", [(100, 8), (1000, 3)])
def test_shares_match_the_cpu_time_spent(python, tmp_path, rate, seconds):
    truth_path = tmp_path / "truth.json"
    out = tmp_path / "profile.folded"
    env = dict(os.environ, VIGIL_TRUTH=str(truth_path))
    result = record("--rate", rate, "-o", out, "--", python.path, os.path.join(TARGETS, "cpu_shares.py"),
                    seconds, env=env)
    spent = json.loads(truth_path.read_text())
    truth = {name: 100.0 * value / sum(spent.values()) for name, value in spent.items()}
    shares, total = shares_of(folded(out), ["f60", "f30", "f10"])
    assert total >= 0.8 * rate * seconds * 0.9, (total, result.stderr)
    errors = {name: round(shares[name] - truth[name], 2) for name in truth}
    print("share errors (points):", errors)
    for name in truth:
        assert abs(shares[name] - truth[name]) <= 3.0, (name, shares, truth)
    stats = summary_numbers(result.stderr)
    assert stats["invalid"] < 0.5, result.stderr


def innermost_functions(path):
    return {function_of(stack[-1]) for stack in folded(path)}


def spinning_target(python, start_target):
    """busy_and_sleeping.py once its busy thread is inside spin() for good
    (readiness is signalled just before it gets there)."""
    target = start_target(python, "busy_and_sleeping.py")
    while True:
        threads = {t["name"]: t for t in dump_json(target.pid)["threads"]}
        if threads["busy"]["frames"][0]["function"] == "spin":
            return target


def test_gil_and_idle_filters(python, start_target, tmp_path):
    target = spinning_target(python, start_target)
    default, idle, gil = tmp_path / "default.folded", tmp_path / "idle.folded", tmp_path / "gil.folded"
    record("--pid", target.pid, "--duration", 1, "--rate", 200, "-o", default)
    record("--pid", target.pid, "--duration", 1, "--rate", 200, "--idle", "-o", idle)
    record("--pid", target.pid, "--duration", 1, "--rate", 200, "--gil", "-o", gil)
    # The sleeping thread and the main thread (blocked on a lock) are idle:
    # only --idle keeps them; --gil keeps only the thread holding the GIL.
    assert innermost_functions(default) == {"spin"}
    assert innermost_functions(idle) == {"spin", "sleep_forever", "<module>"}
    assert innermost_functions(gil) == {"spin"}


def test_threads_split_the_profile(python, start_target, tmp_path):
    target = start_target(python, "busy_and_sleeping.py")
    out = tmp_path / "threads.folded"
    record("--pid", target.pid, "--duration", 1, "--idle", "--threads", "-o", out)
    roots = {stack[0] for stack in folded(out)}
    native = {t["name"]: t["native_thread_id"] for t in target.truth()["threads"]}
    assert "thread busy (%d)" % native["busy"] in roots
    assert "thread sleeper (%d)" % native["sleeper"] in roots
    assert "thread MainThread (%d)" % target.pid in roots


def test_subprocesses_are_followed_and_labelled(python, tmp_path):
    truth_path = tmp_path / "pids.json"
    out = tmp_path / "tree.folded"
    env = dict(os.environ, VIGIL_TRUTH=str(truth_path))
    record("--subprocesses", "-o", out, "--", python.path, os.path.join(TARGETS, "prefork.py"), 3, env=env)
    pids = json.loads(truth_path.read_text())
    stacks = folded(out)
    by_process = collections.defaultdict(set)
    for stack, count in stacks.items():
        match = re.match(r"process (\d+) ", stack[0])
        assert match, stack[0]
        by_process[int(match.group(1))].update(function_of(label) for label in stack[1:])
    for pid in pids["forked"]:
        assert "forked_worker_loop" in by_process[pid], (pid, dict(by_process))
    for pid in pids["pool"]:
        assert "pool_task" in by_process[pid], (pid, dict(by_process))


def test_every_format_parses_back_with_the_same_counts(python, start_target, tmp_path):
    import jsonschema

    target = start_target(python, "busy_and_sleeping.py")
    paths = {name: tmp_path / name for name in
             ("p.folded", "p.speedscope.json", "p.trace.json", "p.pb.gz", "p.html")}
    result = record("--pid", target.pid, "--duration", 1, "--rate", 250, "--idle", "--threads",
                    *[arg for path in paths.values() for arg in ("-o", path)])
    samples = summary_numbers(result.stderr)["samples"]
    assert samples > 0

    assert sum(folded(paths["p.folded"]).values()) == samples

    speedscope = json.loads(paths["p.speedscope.json"].read_text())
    with open(SCHEMA) as f:
        jsonschema.validate(speedscope, json.load(f))
    assert sum(sum(p["weights"]) for p in speedscope["profiles"]) == samples
    assert len(speedscope["profiles"]) >= 3  # one per thread

    trace = json.loads(paths["p.trace.json"].read_text())
    assert trace["otherData"]["samples"] == samples
    outermost = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e["args"]["depth"] == 0]
    assert sum(e["args"]["samples"] for e in outermost) == samples
    names = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "thread_name"}
    assert {"busy", "sleeper", "MainThread"} <= names

    profile = decode_pprof(paths["p.pb.gz"].read_bytes(), tmp_path)
    assert sum(sample.value[0] for sample in profile.sample) == samples
    assert profile.string_table[profile.sample_type[0].type] == "samples"
    threads = {profile.string_table[label.str] for sample in profile.sample for label in sample.label}
    assert any(thread.startswith("thread busy") for thread in threads), threads

    assert paths["p.html"].read_text().startswith("<!DOCTYPE html>")


def decode_pprof(data, tmp_path):
    """Parses the profile with Python's protobuf, from profile.proto compiled now
    (field numbers are checked independently of it in tests/cpp/test_pprof.cpp)."""
    import importlib
    import sys

    subprocess.run(["protoc", "--proto_path", os.path.join(ROOT, "src", "output"), "--python_out", str(tmp_path),
                    "profile.proto"], check=True)
    sys.path.insert(0, str(tmp_path))
    try:
        profile_pb2 = importlib.import_module("profile_pb2")
    finally:
        sys.path.remove(str(tmp_path))
    profile = profile_pb2.Profile()
    profile.ParseFromString(gzip.decompress(data))
    return profile


def test_process_exiting_mid_recording_still_writes(python, tmp_path):
    out = tmp_path / "short.folded"
    result = record("--duration", 60, "-o", out, "--", python.path, os.path.join(TARGETS, "cpu_shares.py"), 1)
    assert "exited after" in result.stderr
    assert sum(folded(out).values()) > 0


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_and_writes(python, start_target, tmp_path, stop_signal):
    target = start_target(python, "busy_and_sleeping.py")
    out = tmp_path / "stopped.folded"
    vigil = subprocess.Popen([VIGIL, "--verbose", "record", "--pid", str(target.pid), "-o", str(out)],
                             stderr=subprocess.PIPE, text=True)
    # --verbose narrates discovery; once it says the runtime holds, sampling starts.
    for line in vigil.stderr:
        if "validate: _PyRuntime" in line:
            break
    vigil.send_signal(stop_signal)
    _, err = vigil.communicate(timeout=60)
    assert vigil.returncode == 0, err
    assert out.exists()
    assert target.process.poll() is None, "the target must keep running"


@pytest.mark.parametrize("args,code,fragment", [
    (["--rate", "0", "--pid", "1"], 2, "--rate 0 is out of range"),
    (["--rate", "1000000", "--pid", "1"], 2, "out of range"),
    (["--pid", "999999999"], 3, "no process with PID"),
    ([], 2, "say what to record"),
])
def test_bad_input(args, code, fragment):
    result = record(*args, check=False)
    assert result.returncode == code, result.stderr
    assert fragment in result.stderr


def test_not_python_and_unwritable_output(python, start_target, tmp_path):
    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        result = record("--pid", sleeper.pid, "--duration", 1, check=False)
        assert result.returncode == 4 and "not a Python interpreter" in result.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    target = start_target(python, "busy_and_sleeping.py")
    result = record("--pid", target.pid, "--duration", 1, "-o", "/nonexistent/dir/p.html", check=False)
    assert result.returncode == 10, result.stderr
    assert "cannot write /nonexistent/dir/p.html" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run vigil as another user")
def test_permission_denied(python, start_target, tmp_path):
    target = start_target(python, "wait_forever.py")
    result = run_vigil("record", "--pid", target.pid, "--duration", 1, "-o", "/tmp/never.folded", user=65534)
    assert result.returncode == 6, result.stderr
    assert "not allowed" in result.stderr and "CAP_SYS_PTRACE" in result.stderr
