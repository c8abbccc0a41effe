#!/usr/bin/env python3
"""Where the WSGI middleware's cost goes, in one process (no server, no wrk).

Two instances of the same Flask app, one wrapped in vigil.WSGIMiddleware,
called alternately in batches of 3,000 requests, 15 times; prints the median
of the per-request differences. Modes:
  nostart  the middleware, the agent not started
  start    the middleware, the agent started (requests go into its table)
  fake     the middleware with vigil.request replaced by a no-op Python
           object: what the middleware's own Python code costs

Usage: PYTHONPATH=build/python /usr/bin/python3 bench/flask_middleware_ab.py MODE
"""
import statistics
import sys
import tempfile
import time

from flask import Flask
from werkzeug.test import EnvironBuilder

import vigil
import vigil.middleware


class NoOpRequest:
    __slots__ = ("txn", "status")

    def __init__(self, name, user):
        self.txn = "brave_curie_0000"
        self.status = 0

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        return False


class NoOpAgent:
    request = NoOpRequest

    @staticmethod
    def settings():
        return None


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
    if mode == "fake":
        vigil.middleware._vigil = NoOpAgent
    plain, wrapped = make_app("plain"), make_app("wrapped")
    wrapped.wsgi_app = vigil.WSGIMiddleware(wrapped.wsgi_app)
    if mode == "start":
        directory = tempfile.mkdtemp()
        vigil.start(state_dir=directory, store_dir=directory + "/store")
    environ = EnvironBuilder(path="/").get_environ()
    serve(plain, environ, 3000)
    serve(wrapped, environ, 3000)
    differences, plain_times = [], []
    for _ in range(15):
        plain_times.append(serve(plain, environ, 3000))
        differences.append(serve(wrapped, environ, 3000) - plain_times[-1])
    print("%s: plain %.1f µs per request, the middleware adds %.2f µs (medians)"
          % (mode, statistics.median(plain_times), statistics.median(differences)))


if __name__ == "__main__":
    main(sys.argv[1])
