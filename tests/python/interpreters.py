"""Finding every CPython on the machine at run time (never a hard-coded path)."""
import os
import subprocess
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from find_pythons import candidates  # noqa: E402  (one way of finding them, shared with the build)

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
    for path in candidates():
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
