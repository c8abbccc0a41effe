#!/usr/bin/env python3
"""Lists the CPython 3.8+ interpreters to build the agent for.

    find_pythons.py [--one-per-abi] [EXECUTABLE ...]

Without executables, finds every interpreter the way tests/python/interpreters.py
does (pyenv versions, /usr/bin, /usr/local/bin), so that the build and the tests
see the same set. Prints one tab-separated line per interpreter, newest first:

    executable  version  abi-tag  include-dir  EXT_SUFFIX

--one-per-abi keeps the newest patch release of each EXT_SUFFIX: one extension
module serves every interpreter of that ABI, and the newest headers are the
ones with every fix. Runs under any Python 3.8+ (CMake or a pip build backend
picks which); the interpreters themselves are asked in subprocesses.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

# One line per interpreter, asked of the interpreter itself: its own headers
# and suffix, never guessed from its path.
PROBE = (
    "import sys, sysconfig\n"
    "v = sys.version_info\n"
    "abi = 'cp%d%d%s' % (v[0], v[1], getattr(sys, 'abiflags', ''))\n"
    "print('\\t'.join(['%d.%d.%d' % v[:3], abi, sysconfig.get_paths()['include'],"
    " sysconfig.get_config_var('EXT_SUFFIX') or '']))\n"
)
MINIMUM = (3, 8)


def pyenv_roots():
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


def candidates():
    paths = []
    for root in pyenv_roots():
        paths += glob.glob(os.path.join(root, "versions", "*", "bin", "python[23].*[0-9]"))
    for directory in ("/usr/bin", "/usr/local/bin"):
        paths += glob.glob(os.path.join(directory, "python[23].*[0-9]"))
    return [p for p in paths if re.search(r"python\d\.\d+$", p) and os.access(p, os.X_OK)]


def probe(path):
    """(executable, version tuple, abi tag, include dir, EXT_SUFFIX), or None."""
    try:
        out = subprocess.run([path, "-c", PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = out.stdout.strip().split("\t")
    if out.returncode != 0 or len(fields) != 4 or not fields[3]:
        return None
    version = tuple(int(x) for x in fields[0].split("."))
    return (os.path.abspath(path), version, fields[1], fields[2], fields[3])


def interpreters(paths):
    """Every distinct interpreter (by real path) of 3.8 or later, newest first."""
    seen = {}
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            found = probe(path)
            if found and found[1] >= MINIMUM:
                seen[real] = found
    return sorted(seen.values(), key=lambda i: (i[1], i[0]), reverse=True)


def one_per_abi(found):
    kept = {}
    for interpreter in found:  # newest first: the first of each suffix wins
        kept.setdefault(interpreter[4], interpreter)
    return list(kept.values())


def main(argv):
    unique = "--one-per-abi" in argv
    explicit = [a for a in argv if a != "--one-per-abi"]
    missing = [p for p in explicit if not probe(p)]
    if missing:
        sys.stderr.write("find_pythons: not a usable Python: %s\n" % " ".join(missing))
        return 1
    found = interpreters(explicit or candidates())
    for path, version, abi, include, suffix in one_per_abi(found) if unique else found:
        print("\t".join([path, ".".join(map(str, version)), abi, include, suffix]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
