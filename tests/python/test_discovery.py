"""How vigil finds the interpreter: each strategy alone, narrated by --verbose."""
import pytest

from conftest import dump_json, run_vigil

NOT_PYTHON = 4


@pytest.fixture
def target(python, start_target):
    return start_target(python, "known_stacks.py")


def innermost_functions(dump):
    return sorted(t["frames"][0]["function"] for t in dump["threads"])


@pytest.mark.parametrize("strategy", ["symbol", "section", "scan"])
def test_each_strategy_finds_the_same_interpreter(python, target, strategy):
    if strategy == "section" and python.version < (3, 10):
        result = run_vigil("dump", "--runtime-from", "section", target.pid)
        assert result.returncode == NOT_PYTHON, result.stderr
        return
    reference = dump_json(target.pid)
    dump = dump_json(target.pid, "--runtime-from", strategy)
    assert dump["python"]["runtime_found_by"] == strategy
    assert innermost_functions(dump) == innermost_functions(reference)


def test_verbose_narrates_the_steps(python, target):
    result = run_vigil("--verbose", "dump", target.pid)
    assert result.returncode == 0, result.stderr
    said = result.stderr
    assert "vigil: candidate: " in said
    assert "vigil: symbol: _PyRuntime at 0x" in said
    assert "vigil: validate: _PyRuntime at 0x" in said
    if python.version >= (3, 11):
        assert "version: Py_Version says %d.%d.%d" % python.version in said
    else:
        assert "version: %d.%d from the file name" % python.version[:2] in said
    if python.version >= (3, 13):
        assert "offsets read from the target's _Py_DebugOffsets" in said
    assert "snapshot in " in said


def test_verbose_says_why_scan_failed_for_a_non_python(start_target):
    import subprocess

    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        result = run_vigil("--verbose", "dump", sleeper.pid)
        assert result.returncode == NOT_PYTHON
        assert "no version in its name and no Python symbols" in result.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
