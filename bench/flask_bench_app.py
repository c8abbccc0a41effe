"""The Flask app of bench/run_agent_bench.py: one small endpoint, with the
agent and its WSGI middleware when VIGIL_BENCH_AGENT=on (state in
VIGIL_STATE_DIR), plain when off; "agent" starts the agent without the
middleware, "middleware" wraps the app without starting the agent;
"thread" is the plain app with one idle thread more (what any second
thread costs a process: glibc drops its single-thread fast paths); "python"
and "header" wrap the plain app in a middleware written in Python that only
calls it, or that also adds one response header: what any middleware, and
one header in gunicorn, cost; "tracking" wraps it in a Python middleware that
tracks requests as vigil.WSGIMiddleware does (name, vigil.request, id in
environ and header, end at close): what that work costs written in Python.
VIGIL_BENCH_PAGE=table makes the page a 200-row table rendered by Jinja
(about 1.5 ms), for a request doing some work instead of none."""
import os
import threading

from flask import Flask

app = Flask(__name__)


TABLE = app.jinja_env.from_string(
    "<table>{% for row in rows %}<tr><td>{{ row.id }}</td><td>{{ row.name }}</td>"
    "<td>{{ '%.2f' % row.amount }}</td><td>{{ row.state|upper }}</td></tr>{% endfor %}</table>")
ROWS = [{"id": i, "name": "Order <%d>" % i, "amount": i * 1.5, "state": "draft"} for i in range(200)]
TABLE_PAGE = os.environ.get("VIGIL_BENCH_PAGE", "hello") == "table"


@app.route("/")
def index():
    return TABLE.render(rows=ROWS) if TABLE_PAGE else "ok"


MODE = os.environ.get("VIGIL_BENCH_AGENT", "off")
if MODE == "thread":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
elif MODE in ("python", "header"):
    plain = app.wsgi_app
    extra = [("X-Vigil-Transaction", "angry_einstein_7f3a")] if MODE == "header" else []

    def python_middleware(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, headers + extra, exc_info)

        return plain(environ, start)

    app.wsgi_app = python_middleware
elif MODE == "tracking":
    import vigil

    plain = app.wsgi_app

    class Body:
        def __init__(self, result, request):
            self.result, self.request = result, request

        def __iter__(self):
            return iter(self.result)

        def close(self):
            try:
                close = getattr(self.result, "close", None)
                if close is not None:
                    close()
            finally:
                self.request.__exit__(None, None, None)

    def tracking_middleware(environ, start_response):
        name = "%s %s%s" % (environ["REQUEST_METHOD"], environ.get("SCRIPT_NAME", ""),
                            environ["PATH_INFO"])
        request = vigil.request(name, environ.get("REMOTE_USER") or None)
        environ["vigil.txn"] = request.txn
        header = ("X-Vigil-Transaction", request.txn)

        def start(status, headers, exc_info=None):
            request.status = int(status[:3])
            return start_response(status, headers + [header], exc_info)

        request.__enter__()
        return Body(plain(environ, start), request)

    app.wsgi_app = tracking_middleware
elif MODE != "off":
    import vigil

    if MODE in ("on", "agent"):
        vigil.start()
    if MODE in ("on", "middleware"):
        app.wsgi_app = vigil.WSGIMiddleware(app.wsgi_app)
