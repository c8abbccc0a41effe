"""Web framework middlewares: each HTTP request of the application is a
vigil.request named "METHOD PATH", whose transaction id goes back to the client
in a response header.

    app = vigil.WSGIMiddleware(app)       # Flask, Django, any WSGI application
    app = vigil.ASGIMiddleware(app)       # Starlette, FastAPI, any ASGI 3 application

They cost one vigil.request, the name string and the header per HTTP request:
no attributes, no copy of the body, no work per chunk of the body.

An exception that escapes the application before its response began is kept
on the request (its crash record) and the client gets a 500 that shows no
traceback, only the transaction id to quote: crash_page().
"""
import html
import json

from . import _vigil

__all__ = ["ASGIMiddleware", "WSGIMiddleware"]

DEFAULT_HEADER = "X-Vigil-Transaction"


class _HeaderName:
    """The name of the response header that carries the transaction id.

    It is the agent's [requests] header. _vigil.settings() builds a dict at
    each call, too much for every request: the name is read at the first
    request after the agent started, converted once (ASGI wants lower-case
    bytes), and kept. Before the agent runs, the default is used and the
    settings are asked again next time. An empty name means no header.
    """

    __slots__ = ("_convert", "_default", "_configured")

    def __init__(self, convert):
        self._convert = convert
        self._default = convert(DEFAULT_HEADER)
        self._configured = None

    def get(self):
        if self._configured is None:
            settings = _vigil.settings()
            if settings is None:
                return self._default
            self._configured = self._convert(settings["header"])
        return self._configured


def user_name(user):
    """Who a framework's user object is, or None when it is anonymous.

    Starlette's scope["user"] and Django's request.user say whether they are
    authenticated with .is_authenticated; objects without it are taken as
    authenticated (a plain string is a name already).
    """
    if user is None or not getattr(user, "is_authenticated", True):
        return None
    get_username = getattr(user, "get_username", None)  # Django, custom user models too
    if callable(get_username):
        return str(get_username())
    for attribute in ("username", "display_name"):  # Starlette's SimpleUser
        value = getattr(user, attribute, None)
        if value:
            return str(value)
    return str(user)


def _preference(accept, media_type):
    """(q, specificity) that an Accept header gives media_type, from its most
    specific range that matches: between equal q, a type named outright
    (axios's "application/json, text/plain, */*") beats one let in by */*."""
    ranges = {media_type: 2, media_type.split("/")[0] + "/*": 1, "*/*": 0}
    best = (-1, 0.0)  # (specificity, q)
    for part in accept.split(","):
        media_range, *parameters = part.split(";")
        specificity = ranges.get(media_range.strip().lower())
        if specificity is None or specificity < best[0]:
            continue  # another type, or a less specific range than one seen
        q = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # a client that cannot write q gets the default, HTML
        best = max(best, (specificity, q))
    return best[1], best[0]


def crash_page(txn, accept):
    """(content type, body) of the 500 answered for a crash: JSON when the
    Accept header prefers application/json to text/html, else a tiny HTML page.

    It says only that something went wrong and which reference to quote: the
    exception's type, text and traceback are for the crash record, never for
    the client (they can hold paths, queries, data).
    """
    if _preference(accept or "", "application/json") > _preference(accept or "", "text/html"):
        body = json.dumps({"error": "internal server error", "reference": txn})
        return "application/json", body.encode()
    body = ("<!doctype html>\n<html><head><meta charset=utf-8><title>Internal Server Error</title>"
            "</head>\n<body><p>Something went wrong. Reference: <code>%s</code></p></body></html>\n"
            % html.escape(txn))
    return "text/html; charset=utf-8", body.encode()


# --- WSGI ---------------------------------------------------------------------------


# The per-request path is in C (vigil._vigil.WSGIMiddleware,
# src/agent/wsgi_middleware.cpp): no Python frame per request. _wsgi_name and
# _wsgi_user are what it does, and what it calls for an environ that is not a
# dict of str; _wsgi_crash is its path for an application that raised.


def _wsgi_name(environ):
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    # PEP 3333 hands the path over as bytes decoded as latin-1; the name is
    # for people, so non-ASCII paths are shown as the UTF-8 the client sent.
    if not path.isascii():
        path = path.encode("latin-1").decode("utf-8", "replace")
    return environ.get("REQUEST_METHOD", "GET") + " " + path


def _wsgi_user(environ):
    return environ.get("REMOTE_USER") or None


class WSGIMiddleware(_vigil.WSGIMiddleware):
    """Makes each call of a WSGI application a vigil.request.

    name(environ) and user(environ) may replace the defaults: "METHOD PATH"
    (SCRIPT_NAME + PATH_INFO, without the query string) and REMOTE_USER. The
    application finds the transaction id in environ["vigil.txn"] (and in
    vigil.current_transaction()); the client in the response header. The
    request ends when the server closes the response (PEP 3333), so that a
    streamed body is part of it, or when the application raises: then the
    request is kept with the exception, and the client gets crash_page().

    The request begins before the application is called, once
    environ["vigil.txn"] is set. The application gets as its start_response
    the response object the server gets in place of the application's
    iterable: called, it notes the status (request.status, 0 when the status
    line does not begin with a number) and adds the header to a copy of the
    headers; iterated, it hands over the application's iterable; closed, it
    closes that iterable, if it has a close(), and ends the request, once.
    The server then sends the body by iterating: wsgi.file_wrapper's sendfile
    is not used for a wrapped response. A BaseException that is no Exception
    ends the request and goes on: the process is leaving.

    The work is done in C (vigil._vigil.WSGIMiddleware), app(environ,
    start_response) and the given name and user called from there.
    """

    def __init__(self, app, name=None, user=None):
        super().__init__(app, name, user)


def _wsgi_crash(response, exc_info, environ):
    """Ends the request with the application's exception, which keeps it,
    and returns the crash page as the response; the C middleware calls it in
    the exception's except clause, as it were.

    When the application had called start_response, a second call must give
    exc_info (PEP 3333): it replaces the headers while none were sent, and
    re-raises the exception once they were (the application used write()),
    for the server to cut the connection, the only end left for a response
    half sent. A first call goes without: some servers re-raise whenever
    exc_info is given (werkzeug's test client).
    """
    request = response.request
    try:
        content_type, body = crash_page(request.txn, environ.get("HTTP_ACCEPT", ""))
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        response("500 Internal Server Error", headers, exc_info if request.status else None)
    finally:
        response.end(*exc_info)  # with status 500; the page goes out after the request
    return [body]


# --- ASGI ---------------------------------------------------------------------------


def _asgi_name(scope):
    return scope["method"] + " " + scope["path"]


def _asgi_user(scope):
    return user_name(scope.get("user"))


def _asgi_header(name):
    # ASGI headers are bytes, and their names lower-case.
    return name.lower().encode("latin-1")


class ASGIMiddleware:
    """Makes each HTTP request of an ASGI 3 application a vigil.request.

    name(scope) and user(scope) may replace the defaults: "METHOD path" and
    scope["user"] when it is authenticated (set by an authentication
    middleware placed outside this one). The application finds the
    transaction id in scope["vigil.txn"] (and in vigil.current_transaction(),
    which each asyncio task keeps to itself); the client in a header of
    http.response.start. The request ends when the application returns or
    raises; an exception raised before http.response.start is kept with the
    request, and the client gets crash_page(). Other scopes (lifespan,
    websocket) pass through untouched.
    """

    def __init__(self, app, name=None, user=None):
        self.app = app
        self._name = name or _asgi_name
        self._user = user or _asgi_user
        self._header = _HeaderName(_asgi_header)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = _vigil.request(self._name(scope), self._user(scope))
        header_name = self._header.get()
        header = (header_name, request.txn.encode("latin-1")) if header_name else None
        # A copy, as the ASGI spec asks of middlewares that change the scope:
        # the server's own dict stays as it was.
        app_scope = {**scope, "vigil.txn": request.txn}
        request.__enter__()
        try:
            await self.app(app_scope, receive, _sender(send, request, header))
        except BaseException as error:
            # Once http.response.start went out, only the server can end the
            # response, by cutting the connection; cancellation passes too.
            answer = isinstance(error, Exception) and not request.status
            if answer:
                request.status = 500
            request.__exit__(type(error), error, error.__traceback__)  # kept with the exception
            if not answer:
                raise
        else:
            request.__exit__(None, None, None)
            return
        await _send_crash_page(send, request.txn, _asgi_accept(scope), header)


def _sender(send, request, header):
    async def send_noting_status(message):
        if message["type"] == "http.response.start":
            request.status = message["status"]  # also says that the response began
            if header is not None:
                # Copies: the application may reuse its message or headers.
                message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return send_noting_status


def _asgi_accept(scope):
    # Repeated headers mean one list, joined by commas (RFC 9110).
    return ",".join(value.decode("latin-1") for name, value in scope.get("headers", ())
                    if name == b"accept")


async def _send_crash_page(send, txn, accept, header):
    content_type, body = crash_page(txn, accept)
    headers = [(b"content-type", content_type.encode("latin-1")),
               (b"content-length", str(len(body)).encode("latin-1"))]
    if header is not None:
        headers.append(header)
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
