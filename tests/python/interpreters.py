"""Finding every CPython on the machine at run time (never a hard-coded path)."""
import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

PROBE = "import sys, sysconfig; print('%d.%d.%d %s' % (sys.version_info[:3] + (sysconfig.get_config_var('Py_ENABLE_SHARED'),)))"


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: tuple
    shared: bool

    @property
    def id(self):
        where = "pyenv" if "/.pyenv/" in self.path else os.path.dirname(self.path)
        return "%s-%s" % (".".join(map(str, self.version)), where.strip("/").replace("/", "-"))

    @property
    def minor(self):
        return self.version[:2]


def _pyenv_roots():
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        try:
            roots.append(subprocess.check_output(["pyenv", "root"], text=True).strip())
        except (OSError, subprocess.CalledProcessError):
            pass
    roots.append(os.path.expanduser("~/.pyenv"))
    return roots


def _candidates():
    paths = []
    for root in _pyenv_roots():
        paths += glob.glob(os.path.join(root, "versions", "*", "bin", "python[23].*[0-9]"))
    for directory in ("/usr/bin", "/usr/local/bin"):
        paths += glob.glob(os.path.join(directory, "python[23].*[0-9]"))
    return [p for p in paths if re.search(r"python\d\.\d+$", p) and os.access(p, os.X_OK)]


def _probe(path):
    try:
        out = subprocess.run([path, "-c", PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    version, shared = out.stdout.split()
    return Interpreter(path, tuple(int(x) for x in version.split(".")), shared == "1")


def find_all():
    """Every distinct interpreter (by real path), oldest first."""
    seen = {}
    for path in _candidates():
        real = os.path.realpath(path)
        if real in seen:
            continue
        interpreter = _probe(path)
        if interpreter:
            seen[real] = interpreter
    return sorted(seen.values(), key=lambda i: (i.version, i.path))


ALL = find_all()
SUPPORTED = [i for i in ALL if i.version >= (3, 8)]
TOO_OLD = [i for i in ALL if i.version < (3, 8)]
