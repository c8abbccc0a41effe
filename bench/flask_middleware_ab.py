#!/usr/bin/env python3
"""Where the WSGI middleware's cost goes, in one process (no server, no wrk).

Two instances of the same Flask app, one wrapped in vigil.WSGIMiddleware,
called alternately in batches of 3,000 requests, 15 times; prints the median
of the per-request differences. Modes:
  nostart  the middleware, the agent not started
  start    the middleware, the agent started (requests go into its table)
  fake     the middleware, the agent not started, and apart what its
           vigil.request costs (made, txn, begun, status, ended, from
           Python), to tell the middleware's own code from the request's.
           (The per-request path is C since vigil._vigil.WSGIMiddleware:
           the request can no longer be swapped for a Python no-op.)

Usage: PYTHONPATH=build/python /usr/bin/python3 bench/flask_middleware_ab.py MODE
"""
import statistics
import sys
import tempfile
import time

from flask import Flask
from werkzeug.test import EnvironBuilder

import vigil


def request_alone(count):
    """µs per request of what the middleware does with its vigil.request."""
    request_type = vigil.request
    started = time.perf_counter()
    for _ in range(count):
        request = request_type("GET /", None)
        request.txn
        request.__enter__()
        request.status = 200
        request.__exit__(None, None, None)
    return (time.perf_counter() - started) / count * 1e6


def make_app(name):
    app = Flask(name)
    app.add_url_rule("/", "index", lambda: "ok")
    return app


def serve(app, environ, count):
    def start_response(status, headers, exc_info=None):
        pass

    started = time.perf_counter()
    for _ in range(count):
        response = app(dict(environ), start_response)
        for _chunk in response:
            pass
        response.close()
    return (time.perf_counter() - started) / count * 1e6


def main(mode):
    plain, wrapped = make_app("plain"), make_app("wrapped")
    wrapped.wsgi_app = vigil.WSGIMiddleware(wrapped.wsgi_app)
    if mode == "start":
        directory = tempfile.mkdtemp()
        vigil.start(state_dir=directory, store_dir=directory + "/store")
    environ = EnvironBuilder(path="/").get_environ()
    serve(plain, environ, 3000)
    serve(wrapped, environ, 3000)
    differences, plain_times, requests = [], [], []
    for _ in range(15):
        plain_times.append(serve(plain, environ, 3000))
        differences.append(serve(wrapped, environ, 3000) - plain_times[-1])
        if mode == "fake":
            requests.append(request_alone(3000))
    print("%s: plain %.1f µs per request, the middleware adds %.2f µs (medians)"
          % (mode, statistics.median(plain_times), statistics.median(differences)), end="")
    if mode == "fake":
        print("; its vigil.request alone (from Python) %.2f µs, the rest %.2f µs"
              % (statistics.median(requests),
                 statistics.median(differences) - statistics.median(requests)), end="")
    print()


if __name__ == "__main__":
    main(sys.argv[1])
