"""The console's pages: thin views over queries.py, rendered with Jinja, no JavaScript.

HTTP Basic with the user `support` and KCO_SUPPORT_PASSWORD, compared in constant time. The
one form that writes (replay, development only) carries a token derived from the password and
the log id, because a browser re-sends Basic credentials on any cross-site POST.

Guesses are throttled per client address (callbacks/web/throttle.py): KCO_SUPPORT_AUTH_LIMIT
wrong credentials (10 per minute), then every request from that address is 429 with
Retry-After, in our error body, until the window is over — the right password too, or the
throttle would tell a guesser which guess was right. Only credentials that were sent and were
wrong count (a browser's first request, before its sign-in prompt, sends none): each is
counted before the comparison and a right one taken back, so a burst of parallel guesses
stops at the limit as a sequence does. A success resets nothing: a count ends with its window.
The counters are the throttles' shared ones, so every worker (and, with Redis, every
instance) counts the same guesses.
"""
from __future__ import annotations

import hashlib
import hmac
import json

from flask import Blueprint, abort, current_app, render_template, request

from callbacks.support import queries
from callbacks.web import schemas, throttle
from callbacks.web.errors import api_error
from callbacks.webhooks import console

bp = Blueprint("support", __name__, url_prefix="/support", template_folder="templates")
USER = "support"
REALM = 'Basic realm="kco-sync support", charset="UTF-8"'


def _password() -> str | None:
    return current_app.config.get("KCO_SUPPORT_PASSWORD") or None


@bp.before_request
def authenticate():
    password = _password()
    if password is None:
        abort(404)  # not configured: the console does not exist
    if not request.headers.get("Authorization"):  # no credentials, no guess: the prompt
        return challenge()
    # Counted before the comparison and refunded on success, so that a burst of parallel
    # guesses is cut at the limit too, not only the guesses after the first ones failed.
    limits, address = throttle.throttle(), throttle.client_address()
    wait = limits.hit(limits.support_auth, "support-auth", address)
    if wait is not None:
        return guessing(wait)
    auth = request.authorization
    ok = (auth is not None and auth.type == "basic"
          and hmac.compare_digest((auth.username or "").encode(), USER.encode())
          & hmac.compare_digest((auth.password or "").encode(), password.encode()))
    if not ok:
        return challenge()
    limits.refund(limits.support_auth, "support-auth", address)
    return None


def challenge():
    return ("Support console: sign in as user “support”.\n", 401,
            {"WWW-Authenticate": REALM, "Content-Type": "text/plain; charset=utf-8"})


def guessing(wait: int):
    rule = "; ".join(str(item) for item in throttle.throttle().support_auth)
    return api_error(429, f"Too many wrong sign-ins to the support console from this address (at "
                          f"most {rule}); retry in {wait} s.",
                     {"Authorization": ["Too many wrong credentials."]},
                     headers={"Retry-After": str(wait), "Cache-Control": "no-store"})


@bp.after_request
def headers(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; "
                                                   "form-action 'self'; frame-ancestors 'none'")
    return response


def replay_allowed() -> bool:
    return not current_app.config.get("PRODUCTION")


def replay_token(log_id: int) -> str:
    return hmac.new((_password() or "").encode(), f"replay:{log_id}".encode(), hashlib.sha256).hexdigest()


def store():
    return current_app.extensions["kco"].store


@bp.get("/")
def index():
    query = request.args.get("q", "")[:255]
    rows, problem = queries.recent(store(), query)
    return render_template("support/index.html", rows=rows, query=query, problem=problem)


@bp.get("/sessions/<sid>")
def session(sid: str):
    if not schemas.SESSION_ID.match(sid):
        abort(404)
    row = queries.one(store(), sid)
    steps = queries.timeline(store(), sid)
    if row is None and not steps:
        abort(404)
    steps, mismatch = console.with_deliveries(store(), sid, steps)  # webhooks, order_mismatch
    return render_template("support/session.html", sid=sid, row=row, steps=steps,
                           replay=replay_allowed(), replay_token=replay_token, pretty=pretty,
                           result=None, mismatch=mismatch, resend_token=console.resend_token,
                           order_actions=replay_allowed() and row and row.order_id,
                           action_token=console.action_token)


bp.add_url_rule("/sessions/<sid>/resend/<int:message_id>", view_func=console.resend,
                methods=["POST"])
bp.add_url_rule("/sessions/<sid>/order/<action>", view_func=console.order_action,
                methods=["POST"])


@bp.post("/sessions/<sid>/replay/<int:log_id>")
def replay(sid: str, log_id: int):
    """Development only: post the logged (scrubbed) body to the same callback again."""
    if not replay_allowed() or not schemas.SESSION_ID.match(sid):
        abort(404)
    if not hmac.compare_digest(request.form.get("token", ""), replay_token(log_id)):
        abort(403)
    from callbacks.cli import replay as replaying

    try:
        payload = replaying.from_log(store(), log_id)
    except replaying.ReplayError as exc:
        return render_template("support/replayed.html", sid=sid, line=str(exc.message)), 422
    if payload.session != sid:
        abort(404)
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # werkzeug's LocalProxy
    result = replaying.send_one(payload, replaying.in_process(app), app.config["KCO_CALLBACK_SECRET"])
    return render_template("support/replayed.html", sid=sid, line=replaying.report_line(result))


def pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
