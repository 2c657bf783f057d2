"""The baseline for bench/run.py: a bare Flask app with the service's paths, nothing else.

Each route only parses the JSON body (POST) and replies a small JSON object, so its throughput
under the same gunicorn settings is the ceiling that Flask, gunicorn gthread, the GIL and the
load generator leave on this machine. No database, no tokens, no logging.

    gunicorn bench.bare_app:app --worker-class gthread …   (bench/run.py starts it)
"""
from flask import Flask, jsonify, request

app = Flask(__name__)


def _parsed() -> dict:
    body = request.get_json(force=True)
    return jsonify(ok=True, lines=len(body.get("order_lines") or ()))


for _callback in ("address_update", "shipping_option_update", "country_change", "validation"):
    app.add_url_rule(f"/kco/{_callback}", _callback, _parsed, methods=["POST"])


@app.get("/api/sessions/<sid>/state")
def state(sid: str):
    return jsonify(session=sid, version=1)


@app.get("/api/sessions/<sid>/events")
def session_events(sid: str):
    return jsonify(events=[], last_id=int(request.args.get("after") or 0))


@app.get("/api/events")
def all_events():
    return jsonify(events=[], last_id=int(request.args.get("after") or 0))


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
