#!/usr/bin/env python3
"""Generate the line-table fixtures for tests/cpp/test_linetable.cpp.

Finds every CPython 3.8+ on this machine (~/.pyenv/versions/*/bin/python3.X
and /usr/bin/python3, one per minor version), has each compile a sample module
that exercises many constructs, and writes, for every code object in it, the
raw line table and the line CPython itself gives each bytecode offset:

    tests/cpp/fixtures/linetable/3.X.json

The expected lines come from CPython's own APIs, never from our decoder:
co_lines() on 3.10+ (what tracebacks use) and dis.findlinestarts() on 3.8-3.9
(the line of an offset is the line of the last start at or before it). They
are stored run-length encoded as [start, end, line] with end exclusive and
line null for "no line"; together the runs cover every offset in
[0, code_len).

Usage: tools/gen_linetable_fixtures.py [--out DIR] [PYTHON ...]
With no PYTHON arguments the interpreters are discovered as described above.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

# Runs inside each target interpreter; must stay valid Python 3.8 syntax.
PROBE = r'''
import dis
import json
import sys


def blank(n):
    return "\n".join("    # filler %d" % i for i in range(n)) + "\n"


big_list = ", ".join("g(%d)" % i for i in range(90))
long_body = "".join("    v%d = a * %d + b\n" % (i, i) for i in range(120))

SOURCE = (
    '"""Sample module for line-table fixtures."""\n'
    "import os\n"
    "\n"
    "\n"
    "def simple(a, b):\n"
    "    c = a + b\n"
    "    return c * 2\n"
    "\n"
    "\n"
    "def empty():\n"
    "    pass\n"
    "\n"
    "\n"
    "def only_doc():\n"
    '    """Docstring only."""\n'
    "\n"
    "\n"
    "def loops(n):\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        if i % 3 == 0:\n"
    "            continue\n"
    "        total += i\n"
    "    else:\n"
    "        total -= 1\n"
    "    while total > 10:\n"
    "        total //= 2\n"
    "        if total == 7:\n"
    "            break\n"
    "    return total\n"
    "\n"
    "\n"
    "def outer(x):\n"
    "    y = x + 1\n"
    "\n"
    "    def inner(z):\n"
    "        nonlocal y\n"
    "        y += z\n"
    "        return lambda w: w + y\n"
    "\n"
    "    return inner\n"
    "\n"
    "\n"
    "class Klass:\n"
    "    attr = 1\n"
    "\n"
    "    def method(self):\n"
    "        return self.attr\n"
    "\n"
    "    @staticmethod\n"
    "    def static(\n"
    "        a,\n"
    "        b,\n"
    "    ):\n"
    "        return a - b\n"
    "\n"
    "    class Nested:\n"
    "        def deep(self):\n"
    "            return [i for i in range(3)]\n"
    "\n"
    "\n"
    "def comprehensions(data):\n"
    "    a = [x * 2 for x in data if x]\n"
    "    b = {x: x for x in data}\n"
    "    c = {x for x in data}\n"
    "    d = list(x for x in data)\n"
    "    e = [[y for y in range(x)] for x in data]\n"
    "    return a, b, c, d, e\n"
    "\n"
    "\n"
    "def exceptions(path):\n"
    "    try:\n"
    "        f = open(path)\n"
    "    except OSError as e:\n"
    "        print(e)\n"
    "        raise\n"
    "    except (ValueError, TypeError):\n"
    "        return None\n"
    "    else:\n"
    "        data = f.read()\n"
    "    finally:\n"
    "        print('done')\n"
    "    with open(path) as a, open(path) as b:\n"
    "        data += a.read() + b.read()\n"
    "    return data\n"
    "\n"
    "\n"
    "def multiline(a, b):\n"
    "    value = (\n"
    "        a\n"
    "        + b\n"
    "        * a\n"
    "    )\n"
    "    result = dict(\n"
    "        key=value,\n"
    "        other=[\n"
    "            a,\n"
    "            b,\n"
    "        ],\n"
    "    )\n"
    "    text = f'{a}' \\\n"
    "        f'{b}'\n"
    "    return result, text\n"
    "\n"
    "\n"
    "def gen(n):\n"
    "    for i in range(n):\n"
    "        yield i\n"
    "    yield from range(n)\n"
    "\n"
    "\n"
    "async def coro(session):\n"
    "    async with session as s:\n"
    "        async for item in s:\n"
    "            await item\n"
    "    return await session.close()\n"
    "\n"
    "\n"
    "def far_jumps(a, b):\n"
    "    x = a\n"
    + blank(300)
    + "    y = b\n"
    "    z = compute(\n"
    "        x,\n"
    + blank(200)
    + "        y,\n"
    "    )\n"
    "    while x:\n"
    "        x -= 1\n"
    + blank(180)
    + "        y += 1\n"
    "    big = [" + big_list + "]\n"
    "    return z, big\n"
    "\n"
    "\n"
    "def long_function(a, b):\n"
    + long_body
    + "    return v0\n"
    "\n"
    "\n"
    "@decorate\n"
    + blank(150).replace("    #", "#")
    + "def decorated():\n"
    "    return 1\n"
    "\n"
    "\n"
    "if __name__ == '__main__':\n"
    "    simple(1, 2)\n"
)

MATCH_SOURCE = (
    "def matcher(cmd):\n"
    "    match cmd:\n"
    "        case [x, y]:\n"
    "            return x + y\n"
    "        case {'k': v}:\n"
    "            return v\n"
    "        case _:\n"
    "            return None\n"
)


def table_and_format(co):
    if sys.version_info >= (3, 11):
        return co.co_linetable, "locations"
    if sys.version_info >= (3, 10):
        return co.co_linetable, "linetable310"
    return co.co_lnotab, "lnotab"


def merge(runs):
    out = []
    for start, end, line in runs:
        if start >= end:
            continue
        if out and out[-1][1] == start and out[-1][2] == line:
            out[-1][1] = end
        else:
            out.append([start, end, line])
    return out


def expected_runs(co):
    code_len = len(co.co_code)
    if sys.version_info >= (3, 10):
        return merge([start, end, line] for start, end, line in co.co_lines())
    # 3.8/3.9: the line of an offset is the line of the last start <= offset.
    starts = list(dis.findlinestarts(co))
    runs = []
    for i, (start, line) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else code_len
        runs.append([start, min(end, code_len), line])
    return merge(runs)


def walk(co, out):
    table, fmt = table_and_format(co)
    out.append(
        {
            "name": getattr(co, "co_qualname", co.co_name),
            "firstlineno": co.co_firstlineno,
            "code_len": len(co.co_code),
            "format": fmt,
            "table": table.hex(),
            "expected": expected_runs(co),
        }
    )
    for const in co.co_consts:
        if hasattr(const, "co_code"):
            walk(const, out)


codes = []
walk(compile(SOURCE, "sample.py", "exec"), codes)
if sys.version_info >= (3, 10):
    walk(compile(MATCH_SOURCE, "sample_match.py", "exec"), codes)

v = sys.version_info
json.dump(
    {
        "python": "%d.%d.%d" % (v[0], v[1], v[2]),
        "format": table_and_format(compile("0", "x", "eval"))[1],
        "code_objects": codes,
    },
    sys.stdout,
)
'''


def discover():
    candidates = sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3.*")),
        key=lambda p: [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", p)],
    )
    candidates = [p for p in candidates if re.search(r"/python3\.\d+$", p)]
    candidates.append("/usr/bin/python3")
    return [p for p in candidates if os.access(p, os.X_OK)]


def minor_of(python):
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def write_fixture(path, data):
    # One code object per line: diffable, and compact enough to commit.
    with open(path, "w") as f:
        f.write('{"python": %s, "format": %s, "code_objects": [\n' % (
            json.dumps(data["python"]), json.dumps(data["format"])))
        items = [json.dumps(c, separators=(",", ":")) for c in data["code_objects"]]
        f.write(",\n".join(items))
        f.write("\n]}\n")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(root, "tests/cpp/fixtures/linetable"))
    parser.add_argument("pythons", nargs="*", help="interpreters (default: discover)")
    args = parser.parse_args()

    seen = {}
    for python in args.pythons or discover():
        try:
            minor = minor_of(python)
        except (OSError, subprocess.CalledProcessError) as e:
            print("skip %s: %s" % (python, e), file=sys.stderr)
            continue
        major, mnr = (int(n) for n in minor.split("."))
        if (major, mnr) < (3, 8) or minor in seen:
            continue
        seen[minor] = python

    if not seen:
        sys.exit("no CPython 3.8+ found")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as probe:
        probe.write(PROBE)
    try:
        for minor, python in sorted(seen.items(), key=lambda kv: [int(n) for n in kv[0].split(".")]):
            out = subprocess.run([python, probe.name], capture_output=True, text=True, check=True)
            data = json.loads(out.stdout)
            path = os.path.join(args.out, "%s.json" % minor)
            write_fixture(path, data)
            print("%s (%s): %d code objects -> %s (%d bytes)" % (
                minor, python, len(data["code_objects"]), os.path.relpath(path, root),
                os.path.getsize(path)))
    finally:
        os.unlink(probe.name)


if __name__ == "__main__":
    main()
