"""vigil: see inside a live Python process.

The agent API::

    import vigil
    vigil.start()                      # or VIGIL_CONFIG=vigil.toml, or `vigil run`
    with vigil.request("sale.order.confirm", user="admin", db_pid=1234) as r:
        ...                            # r.txn == "angry_einstein_7f3a"

    @vigil.request("nightly.report")
    def report(): ...

The agent's native thread logs requests that run longer than a threshold with
their stack, answers SIGUSR1 (running requests) and SIGUSR2 (every thread's
stack), and keeps the running requests in a shared-memory file that
`vigil requests PID` reads from outside.
"""
import atexit
import functools
import inspect
import logging as _logging
import os
import sys
import threading

from . import _vigil
from .middleware import WSGIMiddleware, ASGIMiddleware

__all__ = [
    "ASGIMiddleware",
    "ConfigError",
    "TransactionFilter",
    "WSGIMiddleware",
    "current_request",
    "current_transaction",
    "reload",
    "request",
    "running",
    "start",
    "stop",
]

ConfigError = _vigil.ConfigError
request = _vigil.request
current_request = _vigil.current_request
current_transaction = _vigil.current_transaction
running = _vigil.running

_lock = threading.Lock()
_hooks_installed = False
_log_pump = None


def start(config=None, **overrides):
    """Starts the agent; False when it already runs or the config disables it.

    config is a TOML file (docs/configuration.md); overrides are keys as
    section_key=value (long_requests_threshold=0.5) and beat the file and the
    environment. Raises ConfigError naming the file, the key and what is wrong.
    """
    global _hooks_installed
    with _lock:
        texts = {key: _text(value) for key, value in overrides.items()}
        started = _vigil.start(None if config is None else os.fspath(config), texts)
        if started:
            if not _hooks_installed:
                _hooks_installed = True
                atexit.register(stop)
                os.register_at_fork(before=_vigil.before_fork,
                                    after_in_parent=_vigil.after_fork_in_parent,
                                    after_in_child=_after_fork_in_child)
            _start_log_pump()
            _start_trace()
        return started


def _start_trace():
    """The recording [trace] asks for; a failure is told in one line and the
    application goes on."""
    from . import trace

    try:
        trace.start_from_settings(_vigil.settings())
    except (OSError, RuntimeError) as error:
        sys.stderr.write("vigil: execution trace not started: %s\n" % error)


def stop():
    """Stops the agent: its thread ends and its state file is removed."""
    _vigil.stop()
    if _log_pump is not None and _log_pump is not threading.current_thread():
        _log_pump.join(timeout=2)  # the lines already queued reach logging


def reload():
    """Reads the rules again from the same file, environment and overrides
    (as SIGHUP does); False when no agent runs. Raises ConfigError, and the
    rules in force stay, when the file is wrong."""
    return _vigil.reload()


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _after_fork_in_child():
    _vigil.after_fork_in_child()
    _start_log_pump()


def _start_log_pump():
    """Sends the agent's lines to stdlib logging when [log] logger is set."""
    global _log_pump
    settings = _vigil.settings()
    if not settings or not settings["logger"]:
        return
    logger = _logging.getLogger(settings["logger"])

    def pump():
        while _vigil.pump_log(logger.log, 500):
            pass

    _log_pump = threading.Thread(target=pump, name="vigil-logging", daemon=True)
    _log_pump.start()


def _decorate(template, function):
    """@vigil.request(name, user=None, **attributes): each call is a request."""
    name, user, attributes = template.name, template.user, template.attributes

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def run_coroutine(*args, **kwargs):
            with request(name, user, **attributes):
                return await function(*args, **kwargs)

        return run_coroutine

    @functools.wraps(function)
    def run(*args, **kwargs):
        with request(name, user, **attributes):
            return function(*args, **kwargs)

    return run


class TransactionFilter(_logging.Filter):
    """Adds the running request's transaction id to log records as ``txn``.

    handler.addFilter(vigil.TransactionFilter()), then use %(txn)s in the
    format; it is "-" outside requests.
    """

    def filter(self, record):
        record.txn = current_transaction() or "-"
        return True
