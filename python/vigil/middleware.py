"""Web framework middlewares: each HTTP request of the application is a
vigil.request named "METHOD PATH", whose transaction id goes back to the client
in a response header.

    app = vigil.WSGIMiddleware(app)       # Flask, Django, any WSGI application
    app = vigil.ASGIMiddleware(app)       # Starlette, FastAPI, any ASGI 3 application

They cost one vigil.request, the name string and the header per HTTP request:
no attributes, no copy of the body, no work per chunk of the body.
"""
import sys

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


# --- WSGI ---------------------------------------------------------------------------


def _wsgi_name(environ):
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    # PEP 3333 hands the path over as bytes decoded as latin-1; the name is
    # for people, so non-ASCII paths are shown as the UTF-8 the client sent.
    if not path.isascii():
        path = path.encode("latin-1").decode("utf-8", "replace")
    return environ.get("REQUEST_METHOD", "GET") + " " + path


def _wsgi_user(environ):
    return environ.get("REMOTE_USER") or None


class WSGIMiddleware:
    """Makes each call of a WSGI application a vigil.request.

    name(environ) and user(environ) may replace the defaults: "METHOD PATH"
    (SCRIPT_NAME + PATH_INFO, without the query string) and REMOTE_USER. The
    application finds the transaction id in environ["vigil.txn"] (and in
    vigil.current_transaction()); the client in the response header. The
    request ends when the server closes the response (PEP 3333), so that a
    streamed body is part of it, or when the application raises.
    """

    def __init__(self, app, name=None, user=None):
        self.app = app
        self._name = name or _wsgi_name
        self._user = user or _wsgi_user
        self._header = _HeaderName(str)

    def __call__(self, environ, start_response):
        request = _vigil.request(self._name(environ), self._user(environ))
        request.__enter__()
        try:
            txn = request.txn
            environ["vigil.txn"] = txn
            response = _WSGIResponse(request, start_response, self._header.get(), txn)
            response.result = self.app(environ, response)
        except BaseException:
            request.__exit__(*sys.exc_info())
            raise
        return response


class _WSGIResponse:
    """The application's response, handed to the server in its place.

    One object per request plays both parts the middleware needs, to allocate
    no more: called, it is the start_response given to the application (it
    adds the header); iterated and closed, it is the response iterable given
    to the server. Iteration goes straight to the application's iterator.
    The server then sends the body by iterating: wsgi.file_wrapper's sendfile
    is not used for a wrapped response.
    """

    __slots__ = ("request", "start_response", "header", "result")

    def __init__(self, request, start_response, header_name, txn):
        self.request = request
        self.start_response = start_response
        self.header = (header_name, txn) if header_name else None
        self.result = ()

    def __call__(self, status, headers, exc_info=None):
        if self.header is not None:
            # A copy: an application may pass the same list to every request.
            headers = [*headers, self.header]
        return self.start_response(status, headers, exc_info)

    def __iter__(self):
        return iter(self.result)

    def close(self):
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.request.__exit__(None, None, None)


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
    raises. Other scopes (lifespan, websocket) pass through untouched.
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
        with request:
            txn = request.txn
            # A copy, as the ASGI spec asks of middlewares that change the
            # scope: the server's own dict stays as it was.
            scope = {**scope, "vigil.txn": txn}
            header_name = self._header.get()
            if header_name:
                send = _sender_with_header(send, (header_name, txn.encode("latin-1")))
            await self.app(scope, receive, send)


def _sender_with_header(send, header):
    async def send_with_header(message):
        if message["type"] == "http.response.start":
            # Copies again: the application may reuse its message or headers.
            message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return send_with_header
