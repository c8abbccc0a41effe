"""The web middlewares (python/vigil/middleware.py, vigil.contrib): driven
directly on every interpreter found, then a Flask application under gunicorn
with two workers, loaded by wrk while one slow request runs, and one of its
views crashing: the client gets a reference, `vigil show` the crash."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import READY_TIMEOUT, ROOT, TARGETS, VIGIL, run_vigil

PACKAGE_DIR = os.path.join(ROOT, "build", "python")
SYSTEM_PYTHON = "/usr/bin/python3"
TXN = re.compile(r"^[a-z]+_[a-z]+_[0-9a-f]{4}$")


def run_driver(python, code, tmp_path):
    """Runs code under python with the agent's package; returns what it printed (JSON).

    Its agent keeps requests in tmp_path/store (the crashes of every driver:
    none goes to the user's own store), its log in tmp_path/agent.log.
    """
    store = str(tmp_path / "store")
    environment = dict(os.environ, PYTHONPATH=PACKAGE_DIR, VIGIL=VIGIL, STATE_DIR=str(tmp_path),
                       STORE_DIR=store, VIGIL_STORE_DIR=store,
                       LOG_PATH=str(tmp_path / "agent.log"))
    result = subprocess.run([python, "-c", code], capture_output=True, text=True,
                            env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# Shared by the drivers: what `vigil requests` sees running in this process now.
LIVE = r"""
import json, os, subprocess

def live():
    command = [os.environ["VIGIL"], "requests", "--json", "--state-dir", os.environ["STATE_DIR"],
               str(os.getpid())]
    document = json.loads(subprocess.run(command, capture_output=True, text=True,
                                         check=True).stdout)
    return [{key: r[key] for key in ("txn", "name", "user")} for r in document["requests"]]
"""

WSGI_DRIVER = LIVE + r"""
import vigil

vigil.start(state_dir=os.environ["STATE_DIR"])
HEADERS = [("Content-Type", "text/plain")]  # one list for every response
seen = {}


class Body:
    # A streamed body that records what it sees and when the server closes it.
    def __iter__(self):
        yield b"first "
        seen["txn_in_body"] = vigil.current_transaction()
        yield b"second"

    def close(self):
        seen["body_closed"] = True


def app(environ, start_response):
    seen["txn_in_app"] = vigil.current_transaction()
    seen["environ_txn"] = environ["vigil.txn"]
    if environ["PATH_INFO"] == "/boom":
        raise KeyError("boom")
    start_response("200 OK", HEADERS)
    return Body()


def environ(path, **extra):
    return dict(REQUEST_METHOD="POST", SCRIPT_NAME="/shop", PATH_INFO=path, QUERY_STRING="a=1",
                **extra)


def call(middleware, environ):
    response = {}

    def start_response(status, headers, exc_info=None):
        response["status"] = status
        response["headers"] = dict(headers)

    result = middleware(environ, start_response)
    response["body"] = b"".join(result).decode()
    response["running_before_close"] = live()
    response["current_before_close"] = vigil.current_transaction()
    getattr(result, "close", lambda: None)()  # the crash page is a plain list
    response["current_after"] = vigil.current_transaction()
    response["running_after"] = live()
    response["seen"] = dict(seen)
    seen.clear()
    return response


plain = vigil.WSGIMiddleware(app)
named = vigil.WSGIMiddleware(app, name=lambda e: "shop" + e["PATH_INFO"], user=lambda e: "bob")
print(json.dumps({
    "plain": call(plain, environ("/orders/7", REMOTE_USER="alice")),
    "anonymous": call(plain, environ("/caf\u00c3\u00a9")),  # UTF-8 "/café" as PEP 3333 gives it
    "named": call(named, environ("/orders/8")),
    "crashed": call(plain, environ("/boom")),
    "headers_left_alone": HEADERS == [("Content-Type", "text/plain")],
}))
"""


def test_wsgi_middleware(python, tmp_path):
    result = run_driver(python.path, WSGI_DRIVER, tmp_path)
    plain = result["plain"]
    txn = plain["seen"]["txn_in_app"]
    assert TXN.match(txn)
    # The client, the environ and the streamed body see the txn the app saw.
    assert plain["headers"] == {"Content-Type": "text/plain", "X-Vigil-Transaction": txn}
    assert plain["seen"]["environ_txn"] == plain["seen"]["txn_in_body"] == txn
    assert plain["body"] == "first second"
    # Still running once the body is sent; over once the server closes it.
    assert plain["running_before_close"] == [{"txn": txn, "name": "POST /shop/orders/7",
                                              "user": "alice"}]
    assert plain["current_before_close"] == txn
    assert plain["seen"]["body_closed"]
    assert plain["current_after"] is None and plain["running_after"] == []

    anonymous = result["anonymous"]
    assert anonymous["running_before_close"] == [
        {"txn": anonymous["seen"]["txn_in_app"], "name": "POST /shop/café", "user": None}]
    named = result["named"]
    assert named["running_before_close"] == [
        {"txn": named["seen"]["txn_in_app"], "name": "shop/orders/8", "user": "bob"}]
    assert len({plain["seen"]["txn_in_app"], anonymous["seen"]["txn_in_app"],
                named["seen"]["txn_in_app"]}) == 3

    # The exception ended the request; the page goes out after it (test_wsgi_crash_reference).
    crashed = result["crashed"]
    txn = crashed["seen"]["txn_in_app"]
    assert TXN.match(txn) and crashed["status"] == "500 Internal Server Error"
    assert crashed["headers"]["X-Vigil-Transaction"] == txn and txn in crashed["body"]
    assert crashed["running_before_close"] == [] and crashed["current_before_close"] is None
    assert crashed["current_after"] is None and crashed["running_after"] == []
    assert result["headers_left_alone"]


# The corners of the WSGI middleware's C path (src/agent/wsgi_middleware.cpp),
# each as PEP 3333 and the Python original have it.
WSGI_CORNERS_DRIVER = r"""
import gc, json, os, sys, weakref
import vigil
from vigil import _vigil


def counters():
    numbers = _vigil.counters()
    return numbers["requests_started"], numbers["requests_finished"]


class Server:
    # start_response as a server has it; keeps what it was given.
    def __init__(self):
        self.calls = []

    def __call__(self, status, headers, exc_info=None):
        self.calls.append({"status": status, "headers": headers, "exc_info": exc_info,
                           "handling": repr(sys.exc_info()[1])})


def serve(middleware, environ=None, close=True):
    server = Server()
    environ = dict(REQUEST_METHOD="GET", PATH_INFO="/x") if environ is None else environ
    result = middleware(environ, server)
    body = b"".join(result).decode()
    request = getattr(result, "request", None)
    facts = {"body": body, "status": request.status if request is not None else None,
             "name": request.name if request is not None else None,
             "user": request.user if request is not None else None,
             "calls": server.calls, "current_before_close": vigil.current_transaction(),
             "txn": environ.get("vigil.txn")}
    if close:
        getattr(result, "close", lambda: None)()
    facts["current_after"] = vigil.current_transaction()
    return facts, result


facts = {}
HEADERS = [("Content-Type", "text/plain")]


# Before the agent runs: the default header; the agent's is asked again next time.
def hello(environ, start_response):
    start_response("200 OK", HEADERS)
    return [b"hello"]


shared = vigil.WSGIMiddleware(hello)
facts["before_start"] = serve(shared)[0]["calls"][0]["headers"]
vigil.start(state_dir=os.environ["STATE_DIR"], requests_header="")
facts["no_header"] = serve(shared)[0]["calls"][0]["headers"] is HEADERS  # no copy either
vigil.stop()
vigil.start(state_dir=os.environ["STATE_DIR"], requests_header="X-Other")
facts["kept_after_restart"] = serve(shared)[0]["calls"][0]["headers"] is HEADERS
fresh = vigil.WSGIMiddleware(hello)
facts["configured"] = serve(fresh)[0]["calls"][0]["headers"]

# The public class: its app, a subclass of it, the defaults for falsy name and user.
class Mine(vigil.WSGIMiddleware):
    def __init__(self, app):
        super().__init__(app, name=lambda environ: "mine")
        self.note = "subclass"


mine = Mine(hello)
facts["public"] = {"app": vigil.WSGIMiddleware(hello).app is hello,
                   "subclass": [mine.note, serve(mine)[0]["name"]],
                   "falsy": serve(vigil.WSGIMiddleware(hello, name="", user=None),
                                  dict(REQUEST_METHOD="PUT", PATH_INFO="/y",
                                       REMOTE_USER="eve"))[0]["name"]}

# Custom name and user callables, called from C with the environ.
calls = []
named = vigil.WSGIMiddleware(hello, name=lambda e: calls.append("name") or e["PATH_INFO"].upper(),
                             user=lambda e: calls.append("user") or 42)
custom, _ = serve(named)
facts["custom"] = {"name": custom["name"], "user": custom["user"], "calls": calls}
for case, middleware in (("name_raises", vigil.WSGIMiddleware(hello, name=lambda e: 1 / 0)),
                         ("name_not_str", vigil.WSGIMiddleware(hello, name=lambda e: 7))):
    before = counters()
    environ = {}
    try:
        middleware(environ, Server())
    except Exception as error:
        facts[case] = {"raised": type(error).__name__, "begun": counters() != before,
                       "txn_set": "vigil.txn" in environ}

# An environ that is no dict, or whose values are no str: the Python functions.
class Environ(dict):
    pass


mapping, _ = serve(vigil.WSGIMiddleware(hello),
                   Environ(REQUEST_METHOD="DELETE", SCRIPT_NAME="/s", PATH_INFO="/caf\u00c3\u00a9",
                           REMOTE_USER="ann"))
facts["dict_subclass"] = [mapping["name"], mapping["user"], mapping["txn"] is not None]
try:
    vigil.WSGIMiddleware(hello)(dict(PATH_INFO=b"/bytes"), Server())
except TypeError as error:
    facts["bytes_path"] = str(error)
facts["non_latin1_path"] = None
try:
    vigil.WSGIMiddleware(hello)(dict(PATH_INFO="/\u20ac"), Server())
except UnicodeEncodeError as error:
    facts["non_latin1_path"] = type(error).__name__
facts["defaults"] = serve(vigil.WSGIMiddleware(hello), {})[0]["name"]

# A generator application: start_response comes with the first chunk.
def generator_app(environ, start_response):
    start_response("201 Created", [("A", "1")])
    yield vigil.current_transaction().encode()
    yield b"|" + environ["vigil.txn"].encode()


generated, _ = serve(vigil.WSGIMiddleware(generator_app))
facts["generator"] = generated

# start_response by keyword, a second time with exc_info, statuses that are no number.
def retrying_app(environ, start_response):
    start_response(status="200 OK", headers=[("A", "1")])
    try:
        raise ValueError("late")
    except ValueError:
        start_response("503 Busy", [("B", "2")], sys.exc_info())
    return [b"busy"]


retried, _ = serve(vigil.WSGIMiddleware(retrying_app))
facts["exc_info"] = {"status": retried["status"],
                     "calls": [[c["status"], c["headers"], c["exc_info"] is not None]
                               for c in retried["calls"]]}
statuses = {}
for status in ("abc OK", "2", b"404 Not Found", " 42 x"):
    def app(environ, start_response, status=status):
        start_response(status, [])
        return []
    statuses[repr(status)] = serve(vigil.WSGIMiddleware(app))[0]["status"]
facts["statuses"] = statuses

# The response's iterable: without close, closed twice, a close that raises.
def iterator_app(environ, start_response):
    start_response("200 OK", [])
    return iter([b"a", b"b"])


before = counters()
plain, result = serve(vigil.WSGIMiddleware(iterator_app), close=False)
running = counters()
result.close()
result.close()
facts["no_close"] = {"body": plain["body"], "ended": counters()[1] - running[1],
                     "began": running[0] - before[0], "request_after": repr(result.request)}


class Closing:
    closed = 0

    def __iter__(self):
        return iter([b"c"])

    def close(self):
        Closing.closed += 1
        if Closing.closed == 3:
            raise OSError("disk gone")


def closing_app(environ, start_response):
    start_response("200 OK", [])
    return Closing()


before = counters()
_, result = serve(vigil.WSGIMiddleware(closing_app), close=False)
result.close()
result.close()
facts["closed_twice"] = {"closes": Closing.closed, "ended": counters()[1] - before[1]}
before = counters()
_, result = serve(vigil.WSGIMiddleware(closing_app), close=False)
try:
    result.close()
except OSError as error:
    facts["close_raises"] = {"raised": str(error), "ended": counters()[1] - before[1],
                             "current": vigil.current_transaction()}

# The crash path sees the application's exception as the one being handled.
def failing_app(environ, start_response):
    raise LookupError("nope")


crashed, page = serve(vigil.WSGIMiddleware(failing_app), dict(HTTP_ACCEPT="application/json"))
facts["crash"] = {"page": type(page).__name__, "status": crashed["calls"][0]["status"],
                  "handling": crashed["calls"][0]["handling"], "current": crashed["current_after"]}

# A BaseException ends the request and goes on.
def exiting_app(environ, start_response):
    raise SystemExit(3)


before = counters()
try:
    vigil.WSGIMiddleware(exiting_app)({}, Server())
except SystemExit as error:
    facts["exit"] = {"code": error.code, "ended": counters()[1] - before[1],
                     "current": vigil.current_transaction()}

# The response is in the collector's sight: a cycle through it goes, and its
# request ends with it.
class Body:
    def __iter__(self):
        return iter([b"cycle"])


bodies = []


def cyclic_app(environ, start_response):
    body = Body()
    body.start_response = start_response  # the body holds the response, which holds it
    bodies.append(weakref.ref(body))
    start_response("200 OK", [])
    return body


before = counters()
_, result = serve(vigil.WSGIMiddleware(cyclic_app), close=False)
tracked = gc.is_tracked(result)
del result
gc.collect()
facts["collected"] = {"tracked": tracked, "body_freed": bodies[0]() is None}
vigil.stop()
print(json.dumps(facts))
"""


def test_wsgi_middleware_corners(python, tmp_path):
    result = run_driver(python.path, WSGI_CORNERS_DRIVER, tmp_path)
    assert result["before_start"] == [["Content-Type", "text/plain"],
                                      ["X-Vigil-Transaction", result["before_start"][1][1]]]
    assert TXN.match(result["before_start"][1][1])
    # An empty header name: no header, and the application's own list goes out.
    assert result["no_header"] and result["kept_after_restart"]  # read once the agent ran
    assert result["configured"][1][0] == "X-Other"
    assert result["public"] == {"app": True, "subclass": ["subclass", "mine"], "falsy": "PUT /y"}
    assert result["custom"] == {"name": "/X", "user": 42, "calls": ["name", "user"]}
    # Nothing began for a name that failed, nor was the environ touched.
    assert result["name_raises"] == {"raised": "ZeroDivisionError", "begun": False,
                                     "txn_set": False}
    assert result["name_not_str"] == {"raised": "TypeError", "begun": False, "txn_set": False}
    assert result["dict_subclass"] == ["DELETE /s/café", "ann", True]
    assert "bytes" in result["bytes_path"]  # Python's own error for str + bytes
    assert result["non_latin1_path"] == "UnicodeEncodeError"
    assert result["defaults"] == "GET "
    generated = result["generator"]
    txn = generated["txn"]
    assert generated["body"] == "%s|%s" % (txn, txn) and generated["status"] == 201
    assert generated["calls"][0]["headers"] == [["A", "1"], ["X-Other", txn]]
    assert generated["current_before_close"] == txn and generated["current_after"] is None
    txn = result["exc_info"]["calls"][0][1][1][1]
    assert TXN.match(txn) and result["exc_info"] == {"status": 503, "calls": [
        ["200 OK", [["A", "1"], ["X-Other", txn]], False],
        ["503 Busy", [["B", "2"], ["X-Other", txn]], True]]}
    assert result["statuses"] == {"'abc OK'": 0, "'2'": 2, "b'404 Not Found'": 404, "' 42 x'": 42}
    assert result["no_close"] == {"body": "ab", "ended": 1, "began": 1, "request_after": "None"}
    # The request ends once; the iterable's close is called at each close, as asked.
    assert result["closed_twice"] == {"closes": 2, "ended": 1}
    assert result["close_raises"] == {"raised": "disk gone", "ended": 1, "current": None}
    assert result["crash"] == {"page": "list", "status": "500 Internal Server Error",
                               "handling": "LookupError('nope')", "current": None}
    assert result["exit"] == {"code": 3, "ended": 1, "current": None}
    assert result["collected"] == {"tracked": True, "body_freed": True}


ASGI_DRIVER = LIVE + r"""
import asyncio
import vigil

vigil.start(state_dir=os.environ["STATE_DIR"], requests_header="X-Request-Txn")
CONCURRENT = 4


class User:
    def __init__(self, username, is_authenticated):
        self.username, self.is_authenticated = username, is_authenticated


class App:
    # Holds each request until all CONCURRENT are in, so that they overlap.
    def __init__(self):
        self.inside = 0
        self.everyone_in = asyncio.Event()
        self.running = None

    async def __call__(self, scope, receive, send):
        txn = vigil.current_transaction()
        if scope["type"] != "http":
            self.lifespan = {"txn": txn, "has_txn": "vigil.txn" in scope}
            return
        await receive()
        if scope["path"] == "/boom":
            self.boom_txn = txn
            raise KeyError("boom")
        self.inside += 1
        if self.inside == CONCURRENT:
            self.running = live()
            self.everyone_in.set()
        await self.everyone_in.wait()
        seen = {"txn": txn, "after_wait": vigil.current_transaction(), "scope_txn": scope["vigil.txn"]}
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


def http_scope(path, user=None):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"a=1", "headers": []}
    if user is not None:
        scope["user"] = user
    return scope


async def call(middleware, scope):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await middleware(scope, receive, send)
    return {"headers": {k.decode(): v.decode() for k, v in sent[0]["headers"]},
            "body": sent[1]["body"].decode(), "scope_untouched": "vigil.txn" not in scope,
            "messages": [(m["type"], m.get("status")) for m in sent]}


async def main():
    app = App()
    middleware = vigil.ASGIMiddleware(app)
    users = [User("alice", True), User("ghost", False), "carol", None]
    calls = [call(middleware, http_scope("/items/%d" % i, users[i])) for i in range(CONCURRENT)]
    responses = await asyncio.gather(*calls)
    facts = {"responses": responses, "running_together": app.running,
             "current_after": vigil.current_transaction(), "running_after": live()}
    facts["boom"] = await call(middleware, http_scope("/boom"))
    facts["boom_txn"] = app.boom_txn
    facts["running_after_boom"] = live()
    facts["current_after_boom"] = vigil.current_transaction()
    await middleware({"type": "lifespan"}, None, None)
    facts["lifespan"] = app.lifespan
    return facts

print(json.dumps(asyncio.run(main())))
"""


def test_asgi_middleware(python, tmp_path):
    result = run_driver(python.path, ASGI_DRIVER, tmp_path)
    responses = result["responses"]
    seen = [json.loads(response["body"]) for response in responses]
    txns = [each["txn"] for each in seen]
    assert all(TXN.match(txn) for txn in txns) and len(set(txns)) == len(txns)
    for txn, response, each in zip(txns, responses, seen):
        # The configured header, in lower case as ASGI wants; each task kept its own txn.
        assert response["headers"] == {"content-type": "application/json", "x-request-txn": txn}
        assert each["after_wait"] == each["scope_txn"] == txn
        assert response["scope_untouched"]
        assert response["messages"] == [["http.response.start", 200], ["http.response.body", None]]
    running = sorted(result["running_together"], key=lambda r: r["name"])
    assert running == [
        {"txn": txns[0], "name": "GET /items/0", "user": "alice"},
        {"txn": txns[1], "name": "GET /items/1", "user": None},  # not authenticated
        {"txn": txns[2], "name": "GET /items/2", "user": "carol"},
        {"txn": txns[3], "name": "GET /items/3", "user": None},
    ]
    assert result["current_after"] is None and result["running_after"] == []
    # The crash page (test_asgi_crash_reference), with the configured header.
    boom, boom_txn = result["boom"], result["boom_txn"]
    assert TXN.match(boom_txn) and boom["headers"]["x-request-txn"] == boom_txn
    assert boom["messages"] == [["http.response.start", 500], ["http.response.body", None]]
    assert boom_txn in boom["body"]
    assert result["current_after_boom"] is None and result["running_after_boom"] == []
    assert result["lifespan"] == {"txn": None, "has_txn": False}


# --- Crash references -----------------------------------------------------------------

# The Accept headers of a script (axios's) and of a browser.
JSON = "application/json, text/plain, */*"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

# Shared by the crash drivers: an agent that keeps crashes in the test's store.
CRASH = r"""
import json, os
import vigil

vigil.start(state_dir=os.environ["STATE_DIR"], store_dir=os.environ["STORE_DIR"],
            log_path=os.environ["LOG_PATH"])
JSON = %r
BROWSER = %r
seen = {}
""" % (JSON, BROWSER)

WSGI_CRASH_DRIVER = LIVE + CRASH + r"""
def checkout(environ, start_response):
    password = "hunter2"
    api_token = "abc"
    amount = 42
    seen["txn"] = vigil.current_transaction()
    if environ["PATH_INFO"] == "/late":  # the body has begun: too late for a page
        start_response("200 OK", [("Content-Type", "text/plain")])(b"partial")
    raise ValueError("card declined: %d" % amount)


def serve(path, accept):
    # A server as PEP 3333 has it: start_response re-raises once data went out.
    response = {"sent": False}

    def start_response(status, headers, exc_info=None):
        if exc_info is not None and response["sent"]:
            raise exc_info[1].with_traceback(exc_info[2])
        response.update(status=status, headers=dict(headers))

        def write(data):
            response["sent"] = True

        return write

    environ = dict(REQUEST_METHOD="GET", SCRIPT_NAME="", PATH_INFO=path, HTTP_ACCEPT=accept)
    try:
        result = vigil.WSGIMiddleware(checkout)(environ, start_response)
    except ValueError as error:
        response["raised"] = str(error)
    else:
        response["body"] = b"".join(result).decode()
        getattr(result, "close", lambda: None)()
    response["txn"] = seen.pop("txn")
    response["current_after"] = vigil.current_transaction()
    response["running_after"] = live()
    return response


results = {"html": serve("/checkout", BROWSER), "json": serve("/checkout", JSON),
           "late": serve("/late", JSON)}
vigil.stop()  # the store has every crash once it returns
print(json.dumps(results))
"""


def check_crash_page(body, content_type, txn, wants_json):
    """The client's 500: the reference, and nothing of the exception."""
    for leak in ("Traceback", "ValueError", "card declined", "hunter2"):
        assert leak not in body, body
    if wants_json:
        assert content_type == "application/json"
        assert json.loads(body) == {"error": "internal server error", "reference": txn}
    else:
        assert content_type == "text/html; charset=utf-8"
        assert "Something went wrong. Reference: <code>%s</code>" % txn in body, body


def shown_crash(txn, store, function):
    """What `vigil show` prints of a crash: its exception, function and masked locals."""
    text = run_vigil("show", txn, "--store", store, check=True).stdout
    assert "ValueError: card declined: 42" in text, text
    assert re.search(r'^\s*File ".*", line \d+, in %s$' % re.escape(function), text, re.M), text
    for local in ("amount = 42", "password = '***'", "api_token = '***'"):
        assert re.search(r"^\s+%s$" % re.escape(local), text, re.M), text
    assert "hunter2" not in text and "'abc'" not in text, text
    return text


def test_wsgi_crash_reference(python, tmp_path):
    result = run_driver(python.path, WSGI_CRASH_DRIVER, tmp_path)
    for case, wants_json in (("html", False), ("json", True)):
        response = result[case]
        txn = response["txn"]
        assert TXN.match(txn) and response["status"] == "500 Internal Server Error"
        headers = response["headers"]
        assert headers["X-Vigil-Transaction"] == txn
        assert headers["Content-Length"] == str(len(response["body"].encode()))
        check_crash_page(response["body"], headers["Content-Type"], txn, wants_json)
        assert response["current_after"] is None and response["running_after"] == []
        shown_crash(txn, tmp_path / "store", "checkout")
    # Once the body began, the exception goes on to the server; it is kept all the same.
    late = result["late"]
    assert late["raised"] == "card declined: 42" and late["status"] == "200 OK"
    assert late["running_after"] == []
    shown_crash(late["txn"], tmp_path / "store", "checkout")


ASGI_CRASH_DRIVER = LIVE + CRASH + r"""
import asyncio


async def checkout(scope, receive, send):
    password = "hunter2"
    api_token = "abc"
    amount = 42
    seen["txn"] = vigil.current_transaction()
    if scope["path"] == "/late":  # the response has begun: too late for a page
        await send({"type": "http.response.start", "status": 200, "headers": []})
    raise ValueError("card declined: %d" % amount)


async def serve(path, accept):
    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "headers": [(b"accept", accept.encode())]}
    response = {}
    try:
        await vigil.ASGIMiddleware(checkout)(scope, None, send)
    except ValueError as error:
        response["raised"] = str(error)
    response["messages"] = [(m["type"], m.get("status")) for m in sent]
    response["headers"] = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    response["body"] = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    response["txn"] = seen.pop("txn")
    response["current_after"] = vigil.current_transaction()
    response["running_after"] = live()
    return response


async def main():
    return {"html": await serve("/checkout", BROWSER), "json": await serve("/checkout", JSON),
            "late": await serve("/late", JSON)}

results = asyncio.run(main())
vigil.stop()  # the store has every crash once it returns
print(json.dumps(results))
"""


def test_asgi_crash_reference(python, tmp_path):
    result = run_driver(python.path, ASGI_CRASH_DRIVER, tmp_path)
    for case, wants_json in (("html", False), ("json", True)):
        response = result[case]
        txn = response["txn"]
        assert TXN.match(txn) and "raised" not in response
        assert response["messages"] == [["http.response.start", 500], ["http.response.body", None]]
        headers = response["headers"]
        assert headers["x-vigil-transaction"] == txn
        assert headers["content-length"] == str(len(response["body"].encode()))
        check_crash_page(response["body"], headers["content-type"], txn, wants_json)
        assert response["current_after"] is None and response["running_after"] == []
        shown_crash(txn, tmp_path / "store", "checkout")
    late = result["late"]
    assert late["raised"] == "card declined: 42"
    assert late["messages"] == [["http.response.start", 200]] and late["running_after"] == []
    shown_crash(late["txn"], tmp_path / "store", "checkout")


def system_python_with(*modules):
    """Skips the test unless /usr/bin/python3 can import every module."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("no %s" % SYSTEM_PYTHON)
    code = "import " + ", ".join(modules)
    if subprocess.run([SYSTEM_PYTHON, "-c", code], capture_output=True).returncode:
        pytest.skip("%s cannot %s" % (SYSTEM_PYTHON, code))


# For the crash drivers: whether the frames of crashes outlive their request.
# The request keeps a recorded exception, whose frames may lead back to it.
FRAMES_KEPT = r"""
import gc, weakref


class Marker:
    pass


markers = []


def crash_with_marker():
    marker = Marker()
    markers.append(weakref.ref(marker))
    raise ValueError("card declined: 42")


def frames_kept():
    gc.collect()
    return sum(marker() is not None for marker in markers)
"""


# flask_app.py's /crash, through Flask's test client: its own 500 (the error
# handler init_app registers), and, when testing, the exception re-raised by
# Flask to the middleware.
FLASK_CRASH_DRIVER = CRASH + r"""
import sys

sys.path.insert(0, os.environ["TARGETS"])
from flask_app import app
""" + FRAMES_KEPT + r"""
app.add_url_rule("/watched", "watched", crash_with_marker)


def get(accept, path="/crash"):
    response = app.test_client().get(path, headers={"Accept": accept})
    facts = {"status": response.status_code, "content_type": response.content_type,
             "txn": response.headers["X-Vigil-Transaction"], "body": response.get_data(True)}
    response.close()  # as a server does once the body is out: the request ends
    facts["current_after"] = vigil.current_transaction()
    return facts


results = {"handler_html": get(BROWSER), "handler_json": get(JSON)}
get(JSON, "/watched")
app.testing = True  # PROPAGATE_EXCEPTIONS: Flask re-raises what the view raised
results["propagated"] = get(JSON)
get(JSON, "/watched")
results["frames_kept"] = frames_kept()
vigil.stop()
print(json.dumps(results))
"""


def test_flask_crash_reference(tmp_path, monkeypatch):
    system_python_with("flask")
    monkeypatch.setenv("TARGETS", TARGETS)
    result = run_driver(SYSTEM_PYTHON, FLASK_CRASH_DRIVER, tmp_path)
    for case, wants_json in (("handler_html", False), ("handler_json", True),
                             ("propagated", True)):
        response = result[case]
        assert response["status"] == 500 and response["current_after"] is None
        check_crash_page(response["body"], response["content_type"], response["txn"], wants_json)
        text = shown_crash(response["txn"], tmp_path / "store", "crash")
        assert re.search(r"^\s*File .*flask_app.py\", line \d+, in charge$", text, re.M), text
    assert result["frames_kept"] == 0


DJANGO_DRIVER = LIVE + r"""
import django
from django.conf import settings

settings.configure(ALLOWED_HOSTS=["*"],
                   INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"])
django.setup()
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpResponse
from django.test import RequestFactory

import vigil
from vigil.contrib.django import VigilMiddleware

vigil.start(state_dir=os.environ["STATE_DIR"])


def view(request):
    if request.path == "/boom":
        raise KeyError("boom")
    seen = {"txn": vigil.current_transaction(), "request_txn": request.vigil_txn, "running": live()}
    return HttpResponse(json.dumps(seen), content_type="application/json")


def call(path, user):
    request = RequestFactory().get(path, {"a": 1})
    if user is not None:
        request.user = user
    try:
        response = VigilMiddleware(view)(request)
    except KeyError as error:
        return {"raised": repr(error), "running_after": live()}
    return {"header": response["X-Vigil-Transaction"], "seen": json.loads(response.content),
            "current_after": vigil.current_transaction(), "running_after": live()}


print(json.dumps({
    "alice": call("/orders/7", User(username="alice")),
    "anonymous": call("/orders/8", AnonymousUser()),
    "no_auth_middleware": call("/orders/9", None),
    "raised": call("/boom", None),
}))
"""


def test_django_middleware(tmp_path):
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("no %s" % SYSTEM_PYTHON)
    if subprocess.run([SYSTEM_PYTHON, "-c", "import django"], capture_output=True).returncode:
        pytest.skip("Django is not installed (apt-get install python3-django)")
    result = run_driver(SYSTEM_PYTHON, DJANGO_DRIVER, tmp_path)
    for case, path, user in (("alice", "/orders/7", "alice"), ("anonymous", "/orders/8", None),
                             ("no_auth_middleware", "/orders/9", None)):
        response = result[case]
        txn = response["seen"]["txn"]
        assert TXN.match(txn) and response["header"] == response["seen"]["request_txn"] == txn
        assert response["seen"]["running"] == [{"txn": txn, "name": "GET " + path, "user": user}]
        assert response["current_after"] is None and response["running_after"] == []
    assert result["raised"] == {"raised": "KeyError('boom')", "running_after": []}


# Django's own handler runs VigilMiddleware on RequestFactory requests: a view's
# exception comes to process_exception.
DJANGO_CRASH_DRIVER = CRASH + FRAMES_KEPT + r"""
import django
from django.conf import settings

# A SECRET_KEY: Django's error mail to the ADMINS (none) renders the settings.
settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF="__main__",
                   MIDDLEWARE=["vigil.contrib.django.VigilMiddleware"], SECRET_KEY="test")
django.setup()
from django.core.handlers.base import BaseHandler
from django.http import Http404
from django.test import RequestFactory, override_settings
from django.urls import path


def checkout(request):
    password = "hunter2"
    api_token = "abc"
    amount = 42
    raise ValueError("card declined: %d" % amount)


def missing(request):
    raise Http404("no such order")


urlpatterns = [path("checkout", checkout), path("missing", missing),
               path("watched", lambda request: crash_with_marker())]
handler = BaseHandler()
handler.load_middleware()


def get(path, accept):
    response = handler.get_response(RequestFactory().get(path, HTTP_ACCEPT=accept))
    return {"status": response.status_code, "content_type": response["Content-Type"],
            "txn": response["X-Vigil-Transaction"], "body": response.content.decode(),
            "current_after": vigil.current_transaction()}


results = {"html": get("/checkout", BROWSER), "json": get("/checkout", JSON),
           "missing": get("/missing", JSON)}
with override_settings(DEBUG=True):
    results["debug"] = get("/checkout", BROWSER)
get("/watched", JSON)
results["frames_kept"] = frames_kept()
vigil.stop()
print(json.dumps(results))
"""


def test_django_crash_reference(tmp_path):
    system_python_with("django")
    result = run_driver(SYSTEM_PYTHON, DJANGO_CRASH_DRIVER, tmp_path)
    store = tmp_path / "store"
    for case, wants_json in (("html", False), ("json", True)):
        response = result[case]
        assert response["status"] == 500 and response["current_after"] is None
        check_crash_page(response["body"], response["content_type"], response["txn"], wants_json)
        shown_crash(response["txn"], store, "checkout")
    # Django's 404 is no crash: nothing is kept.
    missing = result["missing"]
    assert missing["status"] == 404 and "Reference" not in missing["body"]
    assert run_vigil("show", missing["txn"], "--store", store).returncode != 0
    # With DEBUG, Django's debug page; the crash is kept all the same.
    debug = result["debug"]
    assert debug["status"] == 500 and "ValueError" in debug["body"]
    assert "Something went wrong" not in debug["body"]
    shown_crash(debug["txn"], store, "checkout")
    assert result["frames_kept"] == 0


# --- A real server ------------------------------------------------------------------


def wait_until(condition, what, process=None, timeout=READY_TIMEOUT):
    """Polls condition until it returns something true; fails after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError("the server exited (%d) before %s" % (process.returncode, what))
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def log_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log]


def slow_reports(path):
    return [line for line in log_lines(path)
            if line["event"] == "long_request" and line["name"] == "GET /slow"]


def requests_json(pid, state_dir):
    result = run_vigil("requests", "--json", "--state-dir", state_dir, pid, check=True)
    return json.loads(result.stdout)


class Gunicorn:
    """flask_app.py under `vigil run -- gunicorn` with two sync workers."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.state_dir = tmp_path / "state"
        self.state_dir.mkdir()
        self.log = str(tmp_path / "agent.log")
        self.store = tmp_path / "store"
        self.release = tmp_path / "release"
        self.output_path = tmp_path / "gunicorn.log"
        self.output = open(self.output_path, "w")
        environment = dict(os.environ, VIGIL_STATE_DIR=str(self.state_dir), VIGIL_LOG_PATH=self.log,
                           VIGIL_STORE_DIR=str(self.store),
                           VIGIL_LONG_REQUESTS_THRESHOLD="0.3", VIGIL_LONG_REQUESTS_INTERVAL="0.5",
                           VIGIL_TEST_RELEASE=str(self.release), PYTHONDONTWRITEBYTECODE="1")
        command = [VIGIL, "run", "--", SYSTEM_PYTHON, "-m", "gunicorn", "--workers", "2",
                   "--bind", "127.0.0.1:%d" % self.port, "--chdir", TARGETS, "flask_app:app"]
        self.process = subprocess.Popen(command, env=environment, stdout=self.output,
                                        stderr=subprocess.STDOUT)
        self.pid = self.process.pid  # vigil run becomes the program: the master
        wait_until(lambda: accepts(self.port), "the port to accept", self.process)
        self.workers = wait_until(self._workers_with_agents, "two workers with agents", self.process)

    def _workers_with_agents(self):
        with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as children:
            workers = [int(pid) for pid in children.read().split()]
        ready = len(workers) == 2 and all(self.state_file(pid).exists() for pid in workers)
        return workers if ready else None

    def state_file(self, pid):
        return self.state_dir / ("vigil-%d" % pid)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.output.close()

    def output_text(self):
        return self.output_path.read_text()


def get_slow(port, into):
    """GET /slow; keeps the status, the transaction header and the body in into."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=READY_TIMEOUT)
    try:
        connection.request("GET", "/slow")
        response = connection.getresponse()
        into.update(status=response.status, header=response.getheader("X-Vigil-Transaction"),
                    body=response.read().decode().strip())
    finally:
        connection.close()


def fetch(port, path, accept):
    """GET path; (status, Content-Type, transaction header, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=READY_TIMEOUT)
    try:
        connection.request("GET", path, headers={"Accept": accept})
        response = connection.getresponse()
        return (response.status, response.getheader("Content-Type"),
                response.getheader("X-Vigil-Transaction"), response.read().decode())
    finally:
        connection.close()


def run_wrk(port):
    result = subprocess.run(["wrk", "-t2", "-c4", "-d2s", "http://127.0.0.1:%d/fast" % port],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # wrk prints these lines only when there were any.
    assert "Socket errors" not in result.stdout and "Non-2xx" not in result.stdout, result.stdout
    return int(re.search(r"(\d+) requests in", result.stdout).group(1))


def slow_request_in(pid, state_dir):
    return [r for r in requests_json(pid, state_dir)["requests"] if r["name"] == "GET /slow"]


def finished(server):
    return sum(requests_json(pid, server.state_dir)["counters"]["requests_finished"]
               for pid in server.workers)


def test_flask_under_gunicorn_with_load(tmp_path):
    for program in ("gunicorn", "wrk"):
        if not shutil.which(program):
            pytest.skip("%s is not installed" % program)
    if subprocess.run([SYSTEM_PYTHON, "-c", "import flask, gunicorn"], capture_output=True).returncode:
        pytest.skip("Flask or gunicorn is missing for %s" % SYSTEM_PYTHON)
    server = Gunicorn(tmp_path)
    try:
        check_slow_request_under_load(server)
        assert server.stop() == 0, server.output_text()
    finally:
        server.stop()
    assert "Traceback" not in server.output_text(), server.output_text()
    # Each process removed its own state file on its way out.
    assert not any(server.state_file(pid).exists() for pid in [server.pid, *server.workers])


def check_slow_request_under_load(server):
    # (c) Each worker has an agent of its own, apart from the master's.
    assert server.state_file(server.pid).exists()
    for worker in server.workers:
        assert requests_json(worker, server.state_dir)["pid"] == worker

    slow = {}
    client = threading.Thread(target=get_slow, args=(server.port, slow))
    client.start()
    first = wait_until(lambda: slow_reports(server.log), "a long_request line", server.process)[0]
    worker, txn = first["pid"], first["txn"]
    assert worker in server.workers and worker != server.pid
    # (b) `vigil requests` on that worker shows the slow request while it runs.
    assert [r["txn"] for r in slow_request_in(worker, server.state_dir)] == [txn]

    fast_requests = run_wrk(server.port)  # the other worker serves them all
    assert fast_requests > 0 and client.is_alive()
    server.release.touch()
    client.join(timeout=READY_TIMEOUT)
    assert not client.is_alive()
    assert slow == {"status": 200, "header": txn, "body": txn}

    # (a) Every report of the slow request: its txn, its worker, its stack.
    reports = slow_reports(server.log)
    assert len(reports) >= 2
    assert [r["report"] for r in reports] == list(range(1, len(reports) + 1))
    for report in reports:
        assert (report["txn"], report["pid"], report["user"]) == (txn, worker, None)
        functions = [frame["function"] for frame in report["stack"]]
        assert functions[0] == "slow_report", functions
        # Through the middleware, which is C code (no frame of its own): Flask.__call__
        # calls it, and it calls the Flask.wsgi_app it wraps.
        assert any(f.endswith("Flask.wsgi_app") for f in functions), functions
        outer = functions.index(next(f for f in functions if f.endswith("Flask.wsgi_app"))) + 1
        assert functions[outer].endswith("Flask.__call__"), functions

    # The request ends when gunicorn closes the response, just after the client has it.
    wait_until(lambda: not slow_request_in(worker, server.state_dir), "the slow request to end")
    wait_until(lambda: finished(server) >= fast_requests + 1, "every request to be counted")


def test_flask_crash_under_gunicorn(tmp_path):
    if not shutil.which("gunicorn"):
        pytest.skip("gunicorn is not installed")
    system_python_with("flask", "gunicorn")
    server = Gunicorn(tmp_path)
    try:
        pages = [(fetch(server.port, "/crash", accept), wants_json)
                 for accept, wants_json in ((BROWSER, False), (JSON, True))]
        assert server.stop() == 0, server.output_text()
    finally:
        server.stop()
    # The master waited for its workers, whose agents flushed their stores at
    # exit (atexit, as the removed state files show): nothing left to wait for.
    assert not any(server.state_file(pid).exists() for pid in [server.pid, *server.workers])
    for (status, content_type, txn, body), wants_json in pages:
        assert status == 500 and TXN.match(txn)
        check_crash_page(body, content_type, txn, wants_json)
        text = shown_crash(txn, server.store, "crash")
        assert re.search(r"^name\s+GET /crash$", text, re.M), text
        assert re.search(r'^\s*File ".*flask_app.py", line \d+, in charge$', text, re.M), text
