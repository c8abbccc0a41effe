"""Flask: every request of the application is a vigil.request.

    from vigil.contrib.flask import init_app
    app = Flask(__name__)
    init_app(app)

The transaction id is in flask.request.environ["vigil.txn"] and in
vigil.current_transaction(); the client gets it in a response header.
"""
from ..middleware import WSGIMiddleware


def init_app(app, name=None, user=None):
    """Wraps app.wsgi_app in vigil.WSGIMiddleware and returns the app.

    Wrapping wsgi_app rather than the app keeps the Flask object itself what
    the server and tests see (app.test_client() goes through vigil too).
    name(environ) and user(environ) are as for WSGIMiddleware.
    """
    app.wsgi_app = WSGIMiddleware(app.wsgi_app, name=name, user=user)
    return app
