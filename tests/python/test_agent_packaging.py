"""The agent's packaging: one extension per interpreter in the build tree,
`pip install .` offline, `vigil run`, and the start-up hooks.

The wheel build is the slow part. One interpreter (the one running pytest)
builds from scratch, as a user's `pip install .` does, once per session. The
others reuse a prebuilt tree through VIGIL_BUILD_DIR: the tree the vigil binary
under test comes from (built with the vigil_agent target), else the scratch
tree configured for every interpreter.
"""
import base64
import hashlib
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, VIGIL, run_vigil
from interpreters import SUPPORTED

# build/src/cli/vigil -> build/python, as `vigil run` finds it.
BUILD_PYTHON = os.path.normpath(os.path.join(os.path.dirname(VIGIL), "..", "..", "python"))
SITE_DIRECTORY = os.path.join(BUILD_PYTHON, "_vigil_run")
# One job: the machine's cores are shared.
BUILD_ENV = {"CMAKE_BUILD_PARALLEL_LEVEL": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
             "PIP_NO_INPUT": "1"}
LIST_VIGIL_MODULES = "import sys; print(sorted(m for m in sys.modules if m.startswith('vigil')))"


def clean_env(**extra):
    """The test's environment without anything that would start or find an agent."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIGIL_CONFIG", "VIGIL_AUTOSTART", "VIGIL_PYTHON_DIR",
                        "VIGIL_BUILD_DIR", "PYTHONSTARTUP")}
    env.update(extra)
    return env


def run(command, env=None, timeout=120):
    return subprocess.run(command, capture_output=True, text=True, env=env or clean_env(),
                          timeout=timeout)


def check(result):
    assert result.returncode == 0, "%s failed (%d):\n%s\n%s" % (
        result.args, result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    return result


def ext_suffix(python):
    code = "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"
    return check(run([python.path, "-c", code])).stdout.strip()


def scratch_interpreter():
    """The interpreter running pytest (Debian's python3, the one users have) when supported."""
    mine = os.path.realpath(sys.executable)
    return next((i for i in SUPPORTED if os.path.realpath(i.path) == mine), SUPPORTED[-1])


def pip_install(python, venv, build_dir):
    """A fresh venv of that interpreter, then `pip install .` from it, offline."""
    check(run([python.path, "-m", "venv", str(venv)]))
    env = clean_env(VIGIL_BUILD_DIR=str(build_dir), **BUILD_ENV)
    # --no-index: nothing may come from an index. Build isolation stays on, as
    # users run it: with requires = [] the isolated environment needs nothing.
    command = [str(venv / "bin" / "pip"), "install", "--no-index", "--no-cache-dir", ROOT]
    return check(run(command, env=env, timeout=900))


@pytest.fixture(scope="session")
def scratch_install(tmp_path_factory):
    """The from-scratch build: an empty VIGIL_BUILD_DIR, configured by the backend."""
    base = tmp_path_factory.mktemp("scratch")
    pip_install(scratch_interpreter(), base / "venv", base / "build")
    return base / "venv", base / "build"


def prebuilt_tree():
    """The tree the vigil binary comes from, if it has a module for every interpreter."""
    tree = os.path.normpath(os.path.join(os.path.dirname(VIGIL), "..", ".."))
    manifest = os.path.join(tree, "vigil_agents.txt")
    if not os.path.exists(manifest):
        return None
    with open(manifest, encoding="utf-8") as f:
        suffixes = {line.split("\t")[0] for line in f}
    return tree if all(ext_suffix(i) in suffixes for i in SUPPORTED) else None


@pytest.fixture(scope="session")
def shared_build(request):
    """A tree with every interpreter's module: prebuilt, else the scratch tree
    configured for every interpreter and built once."""
    tree = prebuilt_tree()
    if tree:
        return tree
    build_dir = str(request.getfixturevalue("scratch_install")[1])
    pythons = ";".join(i.path for i in SUPPORTED)
    env = clean_env(**BUILD_ENV)
    check(run(["cmake", "-S", ROOT, "-B", build_dir, "-DVIGIL_PYTHONS=" + pythons], env=env))
    check(run(["cmake", "--build", build_dir, "--target", "vigil_agent"], env=env, timeout=900))
    return build_dir


def site_packages(venv):
    (found,) = venv.glob("lib/python3.*/site-packages")
    return found


# --- The build tree ---------------------------------------------------------------------


def test_extension_imports_from_build_tree(python):
    code = "import vigil._vigil; print(vigil._vigil.__file__)"
    result = check(run([python.path, "-c", code], env=clean_env(PYTHONPATH=BUILD_PYTHON)))
    path = result.stdout.strip()
    assert path == os.path.join(BUILD_PYTHON, "vigil", "_vigil" + ext_suffix(python))


# --- pip install . ------------------------------------------------------------------------


AGENT_CHECK = ("import vigil; print(vigil.running(), vigil._vigil.settings()['header'], "
               "vigil._vigil.state_path())")


def test_pip_install_offline(python, tmp_path, request):
    if python == scratch_interpreter():
        venv = request.getfixturevalue("scratch_install")[0]
    else:
        venv = tmp_path / "venv"
        pip_install(python, venv, request.getfixturevalue("shared_build"))
    site = site_packages(venv)
    venv_python = str(venv / "bin" / "python")
    result = check(run([venv_python, "-c", "import vigil._vigil; print(vigil._vigil.__file__)"]))
    assert result.stdout.strip() == str(site / "vigil" / ("_vigil" + ext_suffix(python)))
    assert (site / "vigil" / "_autostart.py").is_file()
    pth = (site / "vigil-autostart.pth").read_text()
    assert pth.startswith("import ") and pth.count("\n") == 1 and "vigil._autostart" in pth

    # Not asked: the hook imports nothing, not even the package.
    assert check(run([venv_python, "-c", LIST_VIGIL_MODULES])).stdout.strip() == "[]"
    # Asked: the hook imports vigil._autostart, and the program runs whatever it says.
    asked = check(run([venv_python, "-c", LIST_VIGIL_MODULES], env=clean_env(VIGIL_AUTOSTART="1")))
    assert "'vigil._autostart'" in asked.stdout

    # VIGIL_CONFIG=vigil.toml python app.py: the agent runs with the file's settings.
    config = tmp_path / "vigil.toml"
    config.write_text('[state]\ndir = "%s"\n[requests]\nheader = "X-Txn"\n' % tmp_path)
    started = check(run([venv_python, "-c", AGENT_CHECK], env=clean_env(VIGIL_CONFIG=str(config))))
    running, header, state = started.stdout.split()
    assert (running, header) == ("True", "X-Txn")
    assert os.path.dirname(state) == str(tmp_path) and os.path.basename(state).startswith("vigil-")


def test_wheel_is_well_formed(tmp_path, shared_build):
    """The backend's own wheel, checked file by file against its RECORD."""
    python = scratch_interpreter()
    code = ("import sys; sys.path.insert(0, %r); import vigil_build; print(vigil_build.build_wheel(%r))"
            % (os.path.join(ROOT, "packaging"), str(tmp_path)))
    env = clean_env(VIGIL_BUILD_DIR=shared_build, **BUILD_ENV)
    name = check(run([python.path, "-c", code], env=env)).stdout.strip().splitlines()[-1]
    tag = "cp%d%d" % python.minor
    assert name == "vigil-0.1.0-%s-%s-linux_x86_64.whl" % (tag, tag)
    with zipfile.ZipFile(tmp_path / name) as wheel:
        names = set(wheel.namelist())
        record = wheel.read("vigil-0.1.0.dist-info/RECORD").decode().splitlines()
        assert "Tag: %s-%s-linux_x86_64" % (tag, tag) in wheel.read(
            "vigil-0.1.0.dist-info/WHEEL").decode()
        listed = set()
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            listed.add(path)
            if path.endswith("/RECORD"):
                continue
            data = wheel.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(data), path
    assert listed == names
    assert {"vigil/__init__.py", "vigil/_autostart.py", "vigil-autostart.pth",
            "vigil/_vigil" + ext_suffix(python)} <= names
    assert not [n for n in names if n.startswith("vigil/_vigil.") and n.endswith(".so")
                and n != "vigil/_vigil" + ext_suffix(python)]


# --- vigil run -------------------------------------------------------------------------------

APP_CHECK = ("import os, sys; s = sys.modules.get('sitecustomize'); "
             "print('vigil' in sys.modules, getattr(sys, 'app_site_ran', False), os.getpid(), "
             "getattr(s, '__file__', None))")


def vigil_run(python, env):
    process = subprocess.Popen([VIGIL, "run", "--", python.path, "-c", APP_CHECK], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    loaded, app_site, pid, sitecustomize = out.split()
    # exec: the program is the process vigil was.
    assert int(pid) == process.pid
    return loaded, app_site, sitecustomize


def test_run_loads_agent_and_chains_sitecustomize(python, tmp_path):
    app_site = tmp_path / "app"
    app_site.mkdir()
    (app_site / "sitecustomize.py").write_text("import sys\nsys.app_site_ran = True\n")
    loaded, ran, _ = vigil_run(python, clean_env(PYTHONPATH=str(app_site)))
    assert (loaded, ran) == ("True", "True")

    # No sitecustomize of the app: the one Python runs without vigil (Debian's
    # /etc/python3.11/sitecustomize.py, say) still runs, else only vigil's.
    plain = check(run([python.path, "-c", APP_CHECK])).stdout.split()[-1]
    loaded, _, sitecustomize = vigil_run(python, clean_env())
    assert loaded == "True"
    if plain == "None":
        assert sitecustomize == os.path.join(SITE_DIRECTORY, "sitecustomize.py")
    else:
        assert sitecustomize == plain


def one_line_failure(result, code, *words):
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_run_missing_program():
    result = run_vigil("run", "--", "/nonexistent/program", env=clean_env())
    one_line_failure(result, 2, "cannot start /nonexistent/program")


def test_run_missing_config(tmp_path):
    missing = tmp_path / "missing.toml"
    result = run_vigil("run", "--config", missing, "--", sys.executable, "-c", "print(1)",
                       env=clean_env())
    one_line_failure(result, 11, str(missing))


def test_run_missing_package(tmp_path):
    result = run_vigil("run", "--", "true", env=clean_env(VIGIL_PYTHON_DIR=str(tmp_path)))
    one_line_failure(result, 9, "VIGIL_PYTHON_DIR")


# --- vigil._autostart, against a stand-in vigil.start -------------------------------------

STAND_IN = """
import sys, vigil
class ConfigError(Exception):
    pass
def start(config=None):
    print("start", config)
    if config and config.endswith("bad.toml"):
        raise ConfigError("%s:3: [agent] enabled: expected true or false" % config)
    if config and config.endswith("broken.toml"):
        raise RuntimeError("something\\nelse")
vigil.start = start
import vigil._autostart
print("app runs")
"""


@pytest.mark.parametrize(
    "env, code, out, err",
    [
        ({}, 0, "app runs\n", ""),
        ({"VIGIL_AUTOSTART": "1"}, 0, "start None\napp runs\n", ""),
        ({"VIGIL_AUTOSTART": "0"}, 0, "app runs\n", ""),
        ({"VIGIL_CONFIG": "/etc/good.toml"}, 0, "start /etc/good.toml\napp runs\n", ""),
        ({"VIGIL_CONFIG": "/etc/bad.toml"}, 11, "start /etc/bad.toml\n",
         "vigil: /etc/bad.toml:3: [agent] enabled: expected true or false\n"),
        ({"VIGIL_CONFIG": "/etc/broken.toml"}, 0, "start /etc/broken.toml\napp runs\n",
         "vigil: agent not started: something else\n"),
    ],
    ids=["unset", "autostart", "autostart-0", "config", "config-error", "other-error"],
)
def test_autostart(env, code, out, err):
    command = [sys.executable, "-u", "-c", STAND_IN]
    result = run(command, env=clean_env(PYTHONPATH=BUILD_PYTHON, **env))
    assert (result.returncode, result.stdout, result.stderr) == (code, out, err)
