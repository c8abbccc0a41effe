"""vigil's PEP 517 build backend: `pip install .` with nothing from an index.

pyproject.toml names this module (backend-path = ["packaging"]) and requires
nothing, so pip's isolated build environment stays empty and the build works
offline. The wheel is for the interpreter running this backend only:

1. a CMake build tree: $VIGIL_BUILD_DIR (or `-C build-dir=DIR`) when the caller
   has one to reuse (configured already: it is only built), else a temporary
   one configured with -DVIGIL_PYTHONS=<this interpreter> and no tests;
2. the build of the one extension target for this interpreter's EXT_SUFFIX,
   found in the tree's vigil_agents.txt (written by src/agent/CMakeLists.txt);
3. a wheel: the vigil package from python/vigil, that extension, and
   vigil-autostart.pth, which starts the agent in every interpreter of the
   environment whose environment asks for it (VIGIL_CONFIG, VIGIL_AUTOSTART=1).

Standard library only: this runs under every CPython the agent supports.
"""
import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "vigil"
SUMMARY = "See inside a live Python process: the in-process agent"
REQUIRES_PYTHON = ">=3.8"
MANIFEST = "vigil_agents.txt"
PTH_NAME = "vigil-autostart.pth"
# site.py executes a .pth line that starts with "import". The environment is
# checked on that line, before importing anything, so that the hook costs
# nothing (not even the package's import) in the interpreters that did not ask.
PTH_LINE = (
    'import os; (os.environ.get("VIGIL_CONFIG") or os.environ.get("VIGIL_AUTOSTART") == "1")'
    ' and __import__("vigil._autostart")\n'
)
SDIST_PARTS = ["CMakeLists.txt", "pyproject.toml", "README.md", "docs", "packaging", "python",
               "src", "tools"]
# Fixed timestamps: the same sources give the same archive.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# --- PEP 517 hooks ----------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = os.path.join(metadata_directory, _dist_info())
    os.makedirs(dist_info, exist_ok=True)
    for name, data in _metadata_files():
        with open(os.path.join(dist_info, name), "wb") as f:
            f.write(data)
    return _dist_info()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _require_cpython()
    build_dir, temporary = _build_directory(config_settings)
    try:
        extension = _build_extension(build_dir)
        return _write_wheel(wheel_directory, extension)
    finally:
        if temporary:
            shutil.rmtree(build_dir, ignore_errors=True)


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, _version())
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        _add_bytes(tar, base + "/PKG-INFO", _metadata())
        for part in SDIST_PARTS:
            if os.path.exists(os.path.join(ROOT, part)):
                tar.add(os.path.join(ROOT, part), base + "/" + part, filter=_sdist_filter)
    return filename


# --- Metadata ------------------------------------------------------------------------


def _version():
    # One version for the whole project: the one CMake builds the binary with.
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        match = re.search(r"project\(\s*vigil\s+VERSION\s+([0-9.]+)", f.read())
    if not match:
        raise RuntimeError("no project(vigil VERSION ...) in %s/CMakeLists.txt" % ROOT)
    return match.group(1)


def _dist_info():
    return "%s-%s.dist-info" % (NAME, _version())


def _wheel_tag():
    python = "cp%d%d" % sys.version_info[:2]
    abi = python + getattr(sys, "abiflags", "")
    platform = re.sub(r"[-.]", "_", sysconfig.get_platform())
    return "%s-%s-%s" % (python, abi, platform)


def _metadata():
    lines = [
        "Metadata-Version: 2.1",
        "Name: " + NAME,
        "Version: " + _version(),
        "Summary: " + SUMMARY,
        "Requires-Python: " + REQUIRES_PYTHON,
    ]
    return ("\n".join(lines) + "\n").encode()


def _wheel_file():
    lines = [
        "Wheel-Version: 1.0",
        "Generator: vigil_build",
        # An extension module: platlib, not purelib.
        "Root-Is-Purelib: false",
        "Tag: " + _wheel_tag(),
    ]
    return ("\n".join(lines) + "\n").encode()


def _metadata_files():
    return [("METADATA", _metadata()), ("WHEEL", _wheel_file()), ("top_level.txt", b"vigil\n")]


def _require_cpython():
    if sys.implementation.name != "cpython" or sys.version_info < (3, 8):
        raise RuntimeError("vigil's agent is for CPython 3.8 and later, not %s %s"
                           % (sys.implementation.name, sys.version.split()[0]))


# --- The CMake build ------------------------------------------------------------------


def _build_directory(config_settings):
    chosen = (config_settings or {}).get("build-dir") or os.environ.get("VIGIL_BUILD_DIR")
    if chosen:
        return os.path.abspath(chosen), False
    return tempfile.mkdtemp(prefix="vigil-build-"), True


def _run(command):
    # Progress on stderr: pip shows it with -v, and on a failure.
    sys.stderr.write("vigil_build: %s\n" % " ".join(command))
    sys.stderr.flush()
    subprocess.check_call(command, stdout=sys.stderr)


def _configure(build_dir):
    command = ["cmake", "-S", ROOT, "-B", build_dir, "-DVIGIL_PYTHONS=" + sys.executable,
               "-DVIGIL_BUILD_TESTS=OFF", "-DVIGIL_BUILD_BENCH=OFF"]
    if shutil.which("ninja"):
        command += ["-G", "Ninja"]
    _run(command)


def _agent_target(build_dir):
    """(target, output file) of this interpreter's extension in the build tree."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    path = os.path.join(build_dir, MANIFEST)
    entries = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            entries = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for entry_suffix, target, output in entries:
        if entry_suffix == suffix:
            return target, output
    raise RuntimeError(
        "the build tree %s has no agent for this Python (%s, %s); it builds %s. Configure it "
        "with -DVIGIL_PYTHONS=%s, or unset VIGIL_BUILD_DIR for a build of its own"
        % (build_dir, sys.executable, suffix, [e[0] for e in entries] or "none", sys.executable))


def _build_extension(build_dir):
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        _configure(build_dir)
    target, output = _agent_target(build_dir)
    # CMAKE_BUILD_PARALLEL_LEVEL, when set, limits the jobs.
    _run(["cmake", "--build", build_dir, "--target", target])
    return output


# --- The archives -----------------------------------------------------------------------


def _package_files(extension):
    """(name in the wheel, source path): the sources' .py files, not the build
    tree's copies (which keep files deleted since), and the one extension."""
    package = os.path.join(ROOT, "python", NAME)
    files = []
    for directory, subdirectories, names in os.walk(package):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                files.append((os.path.relpath(path, os.path.dirname(package)), path))
    files.append((NAME + "/" + os.path.basename(extension), extension))
    return files


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d\n" % (name, digest, len(data))


def _write_wheel(wheel_directory, extension):
    filename = "%s-%s-%s.whl" % (NAME, _version(), _wheel_tag())
    entries = []
    for name, path in _package_files(extension):
        with open(path, "rb") as f:
            entries.append((name.replace(os.sep, "/"), f.read()))
    entries.append((PTH_NAME, PTH_LINE.encode()))
    entries += [(_dist_info() + "/" + name, data) for name, data in _metadata_files()]
    record_name = _dist_info() + "/RECORD"
    record = "".join(_record_line(name, data) for name, data in entries) + record_name + ",,\n"
    entries.append((record_name, record.encode()))
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            _add_to_zip(z, name, data)
    return filename


def _add_to_zip(archive, name, data):
    info = zipfile.ZipInfo(name, ZIP_TIME)
    mode = 0o755 if name.endswith(".so") else 0o644
    info.external_attr = (0o100000 | mode) << 16  # a regular file with that mode
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def _sdist_filter(info):
    parts = info.name.split("/")
    if "__pycache__" in parts or info.name.endswith(".pyc"):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))
