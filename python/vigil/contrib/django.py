"""Django: every request that reaches this middleware is a vigil.request.

    MIDDLEWARE = [
        ...
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "vigil.contrib.django.VigilMiddleware",
        ...
    ]

Placed after AuthenticationMiddleware, it names the request's user. The
transaction id is in request.vigil_txn and in vigil.current_transaction(); the
client gets it in a response header.
"""
from .. import _vigil
from ..middleware import _HeaderName, user_name


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
        header_name = self._header.get()
        if header_name:
            response[header_name] = vigil_request.txn
        return response
