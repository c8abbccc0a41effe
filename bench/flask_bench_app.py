"""The Flask app of bench/run_agent_bench.py: one small endpoint, with the
agent and its WSGI middleware when VIGIL_BENCH_AGENT=on (state in
VIGIL_STATE_DIR), plain when off; "agent" starts the agent without the
middleware, "middleware" wraps the app without starting the agent;
"thread" is the plain app with one idle thread more (what any second
thread costs a process: glibc drops its single-thread fast paths); "python"
and "header" wrap the plain app in a middleware written in Python that only
calls it, or that also adds one response header: what any middleware, and
one header in gunicorn, cost."""
import os
import threading

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "ok"


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
elif MODE != "off":
    import vigil

    if MODE in ("on", "agent"):
        vigil.start()
    if MODE in ("on", "middleware"):
        app.wsgi_app = vigil.WSGIMiddleware(app.wsgi_app)
