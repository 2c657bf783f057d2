"""The support console's part of webhooks and Order Management: a session's deliveries on its
timeline, a resend button, the `order_mismatch` flag, and (development only) capture, refund
and cancel buttons. The views are the console's (same Basic auth, same headers); each form
carries a token derived from the console's password, as the replay form does, because a
browser re-sends Basic credentials on any cross-site POST.
"""
from __future__ import annotations

import hashlib
import hmac
import uuid

from flask import abort, current_app, render_template, request

from callbacks.klarna.client import KlarnaError
from callbacks.orders.service import UnknownOrder
from callbacks.support.queries import Step
from callbacks.web import schemas
from callbacks.webhooks import endpoints

ACTIONS = {"capture": "captured_amount", "refund": "refunded_amount", "cancel": None}


def with_deliveries(store, sid: str, steps: list[Step]) -> tuple[list[Step], dict | None]:
    """The timeline with every delivery attempt of the session's messages; and the last
    `order_mismatch` event's data, if any."""
    from datetime import datetime, timedelta
    attempts = endpoints.session_deliveries(store, sid)
    for a in attempts:
        at = datetime.fromisoformat(a["at"].rstrip("Z")) - timedelta(milliseconds=a["duration_ms"])
        steps.append(Step(at, "webhook", f"{a['event_type']} → {a['endpoint_id']} "
                          f"(attempt {a['attempt']})", a["status"] if a["status"] else 0,
                          a["duration_ms"], {"message_id": a["message_id"], "error": a["error"],
                                             "event_id": a["event_id"]}))
    mismatch = next((s.detail["data"] for s in reversed(steps)
                     if s.kind == "event" and s.name == "order_mismatch"), None)
    return sorted(steps, key=lambda s: s.at), mismatch


def _secret() -> bytes:
    return current_app.config["KCO_SUPPORT_PASSWORD"].encode()


def resend_token(message_id: str) -> str:
    return hmac.new(_secret(), f"resend:{message_id}".encode(), hashlib.sha256).hexdigest()


def action_token(sid: str, action: str) -> str:
    return hmac.new(_secret(), f"order:{sid}:{action}".encode(), hashlib.sha256).hexdigest()


def _store():
    return current_app.extensions["kco"].store


def resend(sid: str, message_id: int):
    name = endpoints.message_name(message_id)
    if not schemas.SESSION_ID.match(sid) or not hmac.compare_digest(
            request.form.get("token", ""), resend_token(name)):
        abort(403)
    messages = {m["message_id"] for m in endpoints.session_messages(_store(), sid)}
    if name not in messages or not endpoints.resend(_store(), None, message_id):
        abort(404)
    return render_template("support/replayed.html", sid=sid,
                           line=f"{name} queued again: the worker sends it at once")


def order_action(sid: str, action: str):
    """Development only: capture (the amount given, default the rest), refund, cancel."""
    from callbacks.support.views import replay_allowed
    if not replay_allowed() or action not in ACTIONS or not schemas.SESSION_ID.match(sid):
        abort(404)
    if not hmac.compare_digest(request.form.get("token", ""), action_token(sid, action)):
        abort(403)
    state = _store().get_state(sid) or {}
    order_id = (state.get("klarna") or {}).get("order_id")
    if not order_id:
        abort(404)
    body = {}
    if ACTIONS[action]:
        amount = request.form.get("amount", "")
        if not amount.isdigit():
            return render_template("support/replayed.html", sid=sid,
                                   line="the amount must be a whole number of minor units"), 422
        body[ACTIONS[action]] = int(amount)
    key = request.form.get("key") or str(uuid.uuid4())
    try:
        data = current_app.extensions["kco_orders"].act(order_id, action, key, body)
    except UnknownOrder:
        abort(404)
    except KlarnaError as exc:
        return render_template("support/replayed.html", sid=sid,
                               line=f"Klarna refused: {exc.error_code}: "
                                    f"{'; '.join(exc.error_messages)}"), 422
    return render_template("support/replayed.html", sid=sid, line=f"{action}: {data}")
