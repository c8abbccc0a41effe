"""Django: every request that reaches this middleware is a vigil.request.

    MIDDLEWARE = [
        ...
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "vigil.contrib.django.VigilMiddleware",
        ...
    ]

Placed after AuthenticationMiddleware, it names the request's user. The
transaction id is in request.vigil_txn and in vigil.current_transaction(); the
client gets it in a response header. A view that raises is kept with its
exception, and, unless DEBUG, the client gets a 500 page with the transaction
id to quote (vigil.middleware.crash_page).
"""
from django.conf import settings
from django.core import exceptions
from django.http import Http404, HttpResponse
from django.http.multipartparser import MultiPartParserError

from .. import _vigil
from ..middleware import _HeaderName, crash_page, user_name

# What Django answers with a 4xx of its own: the client's mistakes, not crashes.
_CLIENT_ERRORS = tuple(kind for kind in (
    Http404, exceptions.PermissionDenied, exceptions.SuspiciousOperation, MultiPartParserError,
    getattr(exceptions, "BadRequest", None),  # Django 3.2+
) if kind is not None)


class VigilMiddleware:
    """A new-style Django middleware; requests are named "METHOD PATH".

    The request ends when the response is returned to the middlewares above:
    a StreamingHttpResponse's body is sent after it. To include the body, and
    the middlewares above, wrap the WSGI application in vigil.WSGIMiddleware
    instead (it names users only from REMOTE_USER).
    """

    sync_capable = True
    async_capable = False  # Django runs it in a thread under ASGI

    def __init__(self, get_response):
        self.get_response = get_response
        self._header = _HeaderName(str)

    def __call__(self, request):
        # request.user is there only after AuthenticationMiddleware.
        user = user_name(getattr(request, "user", None))
        with _vigil.request(request.method + " " + request.path, user) as vigil_request:
            request.vigil_txn = vigil_request.txn
            response = self.get_response(request)
            vigil_request.status = response.status_code  # a 5xx marks it failed
        # Let go of the ended request: this frame outlives the call in the
        # traceback of the exception process_exception recorded on it, a
        # cycle the garbage collector cannot see (it does not track requests).
        del vigil_request
        header_name = self._header.get()
        if header_name:
            response[header_name] = request.vigil_txn
        return response

    def process_exception(self, request, exception):
        """Keeps what the view raised; answers the reference page unless DEBUG.

        Django turns a view's exception into its own 500 before it comes
        back up here, so it is recorded on the request now. With DEBUG,
        None lets Django show its debug page.
        """
        vigil_request = _vigil.current_request()
        if vigil_request is None or isinstance(exception, _CLIENT_ERRORS):
            return None  # not under vigil, or Django's own 404, 403, 400
        vigil_request.record_exception(exception)
        if settings.DEBUG:
            return None
        content_type, body = crash_page(vigil_request.txn, request.META.get("HTTP_ACCEPT", ""))
        return HttpResponse(body, status=500, content_type=content_type)
