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
    streamed body is part of it, or when the application raises: then the
    request is kept with the exception, and the client gets crash_page().
    """

    def __init__(self, app, name=None, user=None):
        self.app = app
        self._name = name or _wsgi_name
        self._user = user or _wsgi_user
        self._header = _HeaderName(str)

    def __call__(self, environ, start_response):
        # No local holds the request: this frame outlives the call in the
        # traceback of an exception a framework records (see _WSGIResponse.end).
        response = _WSGIResponse(_vigil.request(self._name(environ), self._user(environ)),
                                 start_response, self._header.get())
        # Set up before the request begins: nothing can fail between its
        # begin and the try that guarantees its end.
        environ["vigil.txn"] = response.request.txn
        response.request.__enter__()
        try:
            response.result = self.app(environ, response)
        except Exception:
            return response.crash(sys.exc_info(), environ.get("HTTP_ACCEPT", ""))
        except BaseException:  # the process is leaving: no page to answer
            response.end(*sys.exc_info())
            raise
        return response


def _status_code(status):
    try:
        return int(status[:3])
    except ValueError:
        return 0  # not a status line: the server will say so


class _WSGIResponse:
    """The application's response, handed to the server in its place.

    One object per request plays both parts the middleware needs, to allocate
    no more: called, it is the start_response given to the application (it
    notes the status and adds the header); iterated and closed, it is the
    response iterable given to the server. Iteration goes straight to the
    application's iterator. The server then sends the body by iterating:
    wsgi.file_wrapper's sendfile is not used for a wrapped response.
    """

    __slots__ = ("request", "start_response", "header", "result")

    def __init__(self, request, start_response, header_name):
        self.request = request
        self.start_response = start_response
        self.header = (header_name, request.txn) if header_name else None
        self.result = ()

    def __call__(self, status, headers, exc_info=None):
        self.request.status = _status_code(status)
        if self.header is not None:
            # A copy: an application may pass the same list to every request.
            headers = [*headers, self.header]
        return self.start_response(status, headers, exc_info)

    def crash(self, exc_info, accept):
        """Ends the request with the application's exception, which keeps it,
        and returns the crash page as the response.

        When the application had called start_response, a second call must
        give exc_info (PEP 3333): it replaces the headers while none were
        sent, and re-raises the exception once they were (the application
        used write()), for the server to cut the connection, the only end
        left for a response half sent. A first call goes without: some
        servers re-raise whenever exc_info is given (werkzeug's test client).
        """
        try:
            content_type, body = crash_page(self.request.txn, accept)
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            self("500 Internal Server Error", headers, exc_info if self.request.status else None)
        finally:
            self.end(*exc_info)  # with status 500; the page goes out after the request
        return [body]

    def end(self, kind=None, error=None, traceback=None):
        """Ends the request, once, and lets go of it.

        An exception a framework recorded on the request (record_exception)
        holds frames that hold this object: kept, the request would close a
        cycle the garbage collector cannot see (it does not track the
        request), and the frames would never be freed.
        """
        request, self.request = self.request, None
        if request is not None:
            request.__exit__(kind, error, traceback)

    def __iter__(self):
        return iter(self.result)

    def close(self):
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.end()


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
