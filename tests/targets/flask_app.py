"""A Flask application with vigil's middleware, for tests/python/test_middleware.py.

    vigil run -- python3 -m gunicorn --workers 2 flask_app:app

/fast answers at once. /slow runs slow_report(), which returns only once the
file named by VIGIL_TEST_RELEASE exists: the test decides how long the slow
request lasts, and finds slow_report in the long-request log's stack. /crash
raises with secrets in its locals: the client must get only a reference, the
crash record the locals with the secrets masked.
"""
import os
import time

import flask

from vigil.contrib.flask import init_app

app = init_app(flask.Flask(__name__))


@app.route("/fast")
def fast():
    return "fast\n"


@app.route("/slow")
def slow():
    return slow_report() + "\n"


def slow_report():
    release = os.environ["VIGIL_TEST_RELEASE"]
    # Short sleeps: the request stays in this function, in Python code, for
    # the watchdog to see, and ends soon after the test creates the file.
    while not os.path.exists(release):
        time.sleep(0.01)
    return flask.request.environ["vigil.txn"]


@app.route("/crash")
def crash():
    password = "hunter2"
    api_token = "abc"
    amount = 42
    return charge(amount, password, api_token)


def charge(amount, password, api_token):
    raise ValueError("card declined: %d" % amount)
