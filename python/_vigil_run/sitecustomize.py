"""The sitecustomize `vigil run` puts first on PYTHONPATH.

Python imports one module named sitecustomize at start-up: the first found on
sys.path. This one starts the vigil agent, then runs the sitecustomize the
interpreter would have run without vigil (the application's, a virtualenv's,
or the distribution's, such as Debian's /etc/python3.11/sitecustomize.py), so
that `vigil run` changes nothing else about the program.
"""
import os
import sys


def _start_agent():
    # The same check as vigil._autostart, made before importing the package so
    # that a child process whose environment dropped the variables pays nothing.
    if not (os.environ.get("VIGIL_CONFIG") or os.environ.get("VIGIL_AUTOSTART") == "1"):
        return
    try:
        import vigil._autostart  # noqa: F401
    except Exception as error:
        # The package itself did not import (no extension for this Python, say):
        # the program still runs, and the rest of start-up still happens.
        sys.stderr.write("vigil: agent not started: %s\n" % " ".join(str(error).split()))


def _next_sitecustomize():
    """The spec of the sitecustomize further on sys.path, or None."""
    import importlib.machinery

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    # A directory named sitecustomize without __init__.py is a namespace
    # package, which Python's own start-up would not have run either.
    if spec is None or spec.loader is None or spec.origin in (None, "namespace"):
        return None
    return spec


def _chain():
    import importlib.util

    spec = _next_sitecustomize()
    if spec is None:
        return
    module = importlib.util.module_from_spec(spec)
    # Under its own name, as if Python had imported it: the import system then
    # keeps it as sys.modules["sitecustomize"], and its errors are reported by
    # site.py exactly as they would be without vigil.
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_start_agent()
_chain()
