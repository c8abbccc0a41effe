"""Starts the agent when the environment asks for it, at interpreter start-up.

Imported by the `vigil-autostart.pth` file an installed wheel puts in
site-packages, and by the sitecustomize that `vigil run` puts on PYTHONPATH.
Both check the environment before importing the package, so an interpreter
that did not ask pays nothing; this module checks again for direct imports.

Asked through:
  VIGIL_CONFIG=PATH   start with that configuration file
  VIGIL_AUTOSTART=1   start with the default configuration

A bad configuration ends the process with one line on stderr and exit code 11
(docs/exit-codes.md): running without the monitoring that was asked for would
hide the mistake. Any other failure is reported in one line and the program
runs on, unmonitored: the agent must never be the reason an application fails.
"""
import os
import sys

CONFIG_ERROR_EXIT_CODE = 11


def wanted(environ=os.environ):
    return bool(environ.get("VIGIL_CONFIG")) or environ.get("VIGIL_AUTOSTART") == "1"


def _say(message):
    try:
        sys.stderr.write("vigil: %s\n" % message)
        sys.stderr.flush()
    except Exception:  # no stderr (pythonw, closed descriptor): nothing to tell
        pass


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _is_config_error(error):
    # By name: vigil.ConfigError may be defined by the extension or the package,
    # and the check must not import anything to find it.
    return any(cls.__name__ == "ConfigError" for cls in type(error).__mro__)


def start():
    """Starts the agent as the environment says; returns whether it started."""
    try:
        import vigil

        vigil.start(config=os.environ.get("VIGIL_CONFIG") or None)
        return True
    except Exception as error:
        if _is_config_error(error):
            _say(_one_line(error))
            os._exit(CONFIG_ERROR_EXIT_CODE)
        _say("agent not started: %s" % _one_line(error))
        return False


if wanted():
    start()
