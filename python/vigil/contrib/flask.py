"""Flask: every request of the application is a vigil.request.

    from vigil.contrib.flask import init_app
    app = Flask(__name__)
    init_app(app)

The transaction id is in flask.request.environ["vigil.txn"] and in
vigil.current_transaction(); the client gets it in a response header. A view
that raises is kept with its exception, and the client gets a 500 page with
the transaction id to quote (vigil.middleware.crash_page).
"""
import flask
from werkzeug.exceptions import InternalServerError

from .. import _vigil
from ..middleware import WSGIMiddleware, crash_page


def init_app(app, name=None, user=None):
    """Wraps app.wsgi_app in vigil.WSGIMiddleware, handles its 500s, and
    returns the app.

    Wrapping wsgi_app rather than the app keeps the Flask object itself what
    the server and tests see (app.test_client() goes through vigil too).
    name(environ) and user(environ) are as for WSGIMiddleware.
    """
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, name=name, user=user)
    app.register_error_handler(InternalServerError, answer_crash)
    return app


def answer_crash(error):
    """Flask's handler for its 500s: the reference page, the exception kept.

    Flask catches what a view raises and answers 500 itself, so the exception
    never reaches the middleware: it is recorded on the request here. (With
    PROPAGATE_EXCEPTIONS, in debug and testing, Flask re-raises it instead,
    and the middleware answers.) An application that registers its own 500
    handler afterwards replaces this one.
    """
    request = _vigil.current_request()
    if request is None:  # not under the middleware: Flask's own page
        return error
    original = error.original_exception  # None for abort(500)
    if original is not None:
        request.record_exception(original)
    content_type, body = crash_page(request.txn, flask.request.environ.get("HTTP_ACCEPT", ""))
    return flask.Response(body, status=500, content_type=content_type)
