"""vigil analyse: the hottest lines of an execution trace.

Traces come from vigil_write_trace (tests/cpp/write_trace.cpp: TraceWriter
driven from C++, with a 200 ms sleep in a precise section, amid ordinary
lines, on two threads) and, on every interpreter, from
tests/targets/analyse_target.py under vigil.trace.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, TARGETS, run_vigil

BUILD = os.environ.get("VIGIL_BUILD_DIR") or os.path.join(ROOT, "build")
WRITE_TRACE = os.path.join(BUILD, "tests", "cpp", "vigil_write_trace")
PACKAGE_DIR = os.path.join(BUILD, "python")
SLEEP_NS = 200_000_000


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A base directory holding one run of one process (app), and the truth."""
    if not os.access(WRITE_TRACE, os.X_OK):
        pytest.fail("not built: %s (ninja -C build vigil_write_trace)" % WRITE_TRACE)
    base = tmp_path_factory.mktemp("traces")
    result = subprocess.run([WRITE_TRACE, str(base)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return str(base), json.loads(result.stdout)


def analyse(*args):
    result = run_vigil("analyse", *args)
    assert result.returncode == 0, result.stderr
    return result


def analyse_json(*args):
    return json.loads(analyse("--json", *args).stdout)


def test_the_precise_sleep_is_the_hottest_line(written):
    base, truth = written
    report = analyse_json(base)
    hottest = report["lines"][0]
    assert (hottest["file"], hottest["line"], hottest["function"]) == (truth["file"], 12, "slow")
    assert hottest["source"] == "time.sleep(0.2)"
    assert abs(hottest["time_ns"] - SLEEP_NS) <= SLEEP_NS / 10
    assert truth["least_ns"] <= hottest["time_ns"] <= truth["most_ns"]
    assert hottest["bound_ns"] == 0 and hottest["count"] == 1
    assert report["functions"][0]["function"] == "slow"
    assert report["trace"]["process_name"] == "app"
    assert {t["tid"] for t in report["trace"]["threads"]} == {truth["main_thread"],
                                                              truth["worker_thread"]}
    assert report["trace"]["warnings"] == []


def test_the_process_directory_the_run_and_the_base_all_work(written):
    base, truth = written
    expected = analyse_json(base)
    for path in (truth["dir"], os.path.dirname(truth["dir"]), os.path.join(base, "latest", "app")):
        assert analyse_json(path)["lines"] == expected["lines"]


def duration(ns):
    """As the text table prints a time."""
    if ns < 1000:
        return "%d ns" % ns
    if ns < 1_000_000:
        return "%.2f µs" % (ns / 1e3)
    if ns < 1_000_000_000:
        return "%.2f ms" % (ns / 1e6)
    return "%.3f s" % (ns / 1e9)


ROW = re.compile(r"^ *(\d[\d.]* \S+) +(\d[\d.]* \S+) +([\d.]+)% +([\d,]+) +(\d[\d.]* \S+) +"
                 r"(\d[\d.]* \S+)  (.*)$")


def table(text, title):
    """The rows of one table of the text output, and the source lines under them."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 2
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        match = ROW.match(line)
        if match:
            rows.append({"cells": match.groups(), "source": None})
        else:
            rows[-1]["source"] = line.strip()
    return rows


@pytest.mark.parametrize("sort", ["time", "own", "count", "average"])
def test_json_matches_the_text(written, sort):
    base, _ = written
    text = analyse(base, "--sort", sort, "--top", "8").stdout
    report = analyse_json(base, "--sort", sort, "--top", "8")
    assert report["sort"] == sort
    lines = table(text, "Hottest lines")
    assert len(lines) == len(report["lines"]) == 8
    for row, expected in zip(lines, report["lines"]):
        assert row["cells"] == (
            duration(expected["time_ns"]), duration(expected["own_ns"]),
            "%.1f" % expected["percent"], "{:,}".format(expected["count"]),
            duration(expected["average_ns"]), duration(expected["bound_ns"]),
            "%s:%d %s" % (expected["file"], expected["line"], expected["function"]))
        assert row["source"] == (expected["source"] or None)
    functions = table(text, "Functions")
    assert len(functions) == len(report["functions"]) == 3
    for row, expected in zip(functions, report["functions"]):
        assert row["cells"][3] == "{:,}".format(expected["calls"])
        assert row["cells"][6] == "%s (%s:%d)" % (expected["function"], expected["file"],
                                                 expected["first_line"])
    key = {"time": "time_ns", "own": "own_ns", "count": "count", "average": "average_ns"}[sort]
    values = [row[key] for row in report["lines"]]
    assert values == sorted(values, reverse=True)


def test_the_thread_filter(written):
    base, truth = written
    worker = analyse_json(base, "--thread", truth["worker_thread"])
    assert [t["tid"] for t in worker["trace"]["threads"]] == [truth["worker_thread"]]
    assert {f["function"] for f in worker["functions"]} == {"worker", "busy"}
    assert {t["tid"] for t in analyse_json(base, "-t", truth["worker_thread"], "-t",
                                           truth["main_thread"])["trace"]["threads"]} == {
        truth["worker_thread"], truth["main_thread"]}
    result = run_vigil("analyse", base, "--thread", "1")
    assert result.returncode == 2
    assert "--thread 1: no such thread in the trace" in result.stderr


def test_chrome_export_has_every_call(written, tmp_path):
    base, truth = written
    calls = sum(f["calls"] for f in analyse_json(base, "--top", "0")["functions"])
    output = tmp_path / "timeline.json"
    result = run_vigil("analyse", base, "--export", "chrome", "-o", output)
    assert result.returncode == 0, result.stderr
    assert "wrote %s (chrome: %d calls of 2 threads)" % (output, calls) in result.stderr
    with open(output, encoding="utf-8") as f:
        document = json.load(f)
    complete = [e for e in document["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == calls == document["otherData"]["calls"]
    for event in complete:
        assert {"name", "ts", "dur", "pid", "tid", "args"} <= event.keys()
        assert event["args"]["file"] == truth["file"]
    slow = [e for e in complete if e["name"] == "slow"]
    assert len(slow) == 1 and slow[0]["tid"] == truth["main_thread"]
    assert abs(slow[0]["dur"] * 1000 - SLEEP_NS) <= SLEEP_NS / 10
    names = {e["tid"] for e in document["traceEvents"] if e.get("name") == "thread_name"}
    assert names == {truth["main_thread"], truth["worker_thread"]}
    # Standard output, and threads filtered.
    result = run_vigil("analyse", base, "--export", "chrome", "-o", "-", "-t", truth["main_thread"])
    assert result.returncode == 0, result.stderr
    assert {e["tid"] for e in json.loads(result.stdout)["traceEvents"] if e["ph"] == "X"} == {
        truth["main_thread"]}


def damaged_copy(written, tmp_path, damage):
    _, truth = written
    copy = tmp_path / "damaged"
    shutil.copytree(truth["dir"], copy)
    segment = copy / "events-000001.vtr"
    damage(segment)
    return str(copy)


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_a_damaged_trace_is_analysed_up_to_the_bad_block(written, tmp_path, how):
    def damage(segment):
        size = segment.stat().st_size
        if how == "truncated":
            os.truncate(segment, size - 100)
        else:
            with open(segment, "r+b") as f:
                f.seek(size - 100)
                byte = f.read(1)
                f.seek(size - 100)
                f.write(bytes([byte[0] ^ 0x5A]))

    copy = damaged_copy(written, tmp_path, damage)
    result = run_vigil("analyse", copy)
    assert result.returncode == 0, result.stderr
    warning = result.stderr.strip()
    assert warning.startswith("vigil: warning: %s/events-000001.vtr: block " % copy)
    assert ("is truncated" if how == "truncated" else "is corrupt") in warning
    assert warning.endswith("(analysing what is intact)")
    assert "Hottest lines" in result.stdout
    report = json.loads(run_vigil("analyse", "--json", copy).stdout)
    assert report["trace"]["warnings"] and "events-000001.vtr" in report["trace"]["warnings"][0]
    assert report["trace"]["events"] > 0


def test_no_trace_and_several_processes(tmp_path, written):
    result = run_vigil("analyse", tmp_path / "nothing")
    assert result.returncode == 9, result.stderr
    run = tmp_path / "base" / "250101-000000"
    for name in ("web", "web-4242"):
        shutil.copytree(written[1]["dir"], run / name)
    os.symlink("250101-000000", tmp_path / "base" / "latest")
    result = run_vigil("analyse", tmp_path / "base")
    assert result.returncode == 2
    assert "holds the traces of 2 processes (web, web-4242)" in result.stderr
    assert analyse_json(run / "web-4242")["lines"]


def traces_into_a_dir(python):
    """Whether this build's vigil.trace writes trace directories (start(dir=))."""
    probe = ("import inspect, vigil.trace; "
             "print('dir' in inspect.signature(vigil.trace.start).parameters)")
    result = subprocess.run([python.path, "-c", probe], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=PACKAGE_DIR), timeout=60)
    return result.returncode == 0 and result.stdout.strip() == "True"


def test_a_precise_sleep_recorded_by_vigil_trace_is_the_hottest_line(python, tmp_path):
    if not traces_into_a_dir(python):
        pytest.skip("this build's vigil.trace cannot write a trace directory yet")
    environment = dict(os.environ, PYTHONPATH=PACKAGE_DIR, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([python.path, os.path.join(TARGETS, "analyse_target.py"),
                             str(tmp_path)], env=environment, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    report = analyse_json(tmp_path)
    hottest = report["lines"][0]
    assert hottest["file"] == os.path.join(TARGETS, "analysed_pkg", "__init__.py")
    assert (hottest["function"], hottest["source"]) == ("slow", "time.sleep(0.2)")
    assert abs(hottest["time_ns"] - SLEEP_NS) <= SLEEP_NS / 10
    assert hottest["bound_ns"] == 0
    busy = [f for f in report["functions"] if f["function"] == "busy"]
    assert busy and busy[0]["calls"] == 2
    text = analyse(tmp_path, "--top", "1").stdout
    assert "time.sleep(0.2)" in text
