"""The Flask app of bench/run_agent_bench.py: one small endpoint, with the
agent and its WSGI middleware when VIGIL_BENCH_AGENT=on (state in
VIGIL_STATE_DIR), plain otherwise."""
import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "ok"


if os.environ.get("VIGIL_BENCH_AGENT") == "on":
    import vigil

    vigil.start()
    app.wsgi_app = vigil.WSGIMiddleware(app.wsgi_app)
