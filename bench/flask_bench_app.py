"""The Flask app of bench/run_agent_bench.py: one small endpoint, with the
agent and its WSGI middleware when VIGIL_BENCH_AGENT=on (state in
VIGIL_STATE_DIR), plain when off; "agent" starts the agent without the
middleware, "middleware" wraps the app without starting the agent;
"thread" is the plain app with one idle thread more (what any second
thread costs a process: glibc drops its single-thread fast paths)."""
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
elif MODE != "off":
    import vigil

    if MODE in ("on", "agent"):
        vigil.start()
    if MODE in ("on", "middleware"):
        app.wsgi_app = vigil.WSGIMiddleware(app.wsgi_app)
