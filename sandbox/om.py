"""Order Management after purchase, with Klarna's rules (docs/sandbox.md, docs/klarna.md §7):
captures up to the remaining authorized amount, refunds up to the captured amount, cancel only
with nothing captured, extend and release the authorization, update the merchant references.

Status moves AUTHORIZED → PART_CAPTURED → CAPTURED, or to CANCELLED; EXPIRED once the
authorization's expiry passed with nothing captured. A `Klarna-Idempotency-Key` is honoured for
24 hours: a repeat gets the first answer and changes nothing. The state of each order's
captures and refunds is kept here, beside the OrderStore's orders, under the same lock.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.api import after_api_request, base_url, before_api_request, caller
from sandbox.clock import iso
from sandbox.errors import ApiError, bad_value

om = Blueprint("om", __name__, url_prefix="/ordermanagement/v1")
om.before_request(before_api_request)  # faults, then Basic auth, as every API call
om.after_request(after_api_request)
IDEMPOTENCY_HEADER = "Klarna-Idempotency-Key"
KEY_TTL = timedelta(hours=24)
MAX_AUTHORIZATION = timedelta(days=180)  # extensions stop 180 days after the purchase


@dataclass
class Ledger:
    captures: list = field(default_factory=list)
    refunds: list = field(default_factory=list)
    cancelled: bool = False
    released: bool = False
    expires_at: datetime | None = None  # set by an extension; else completed_at + the days


class OrderManagement:
    def __init__(self, orders, clock, authorization_days: int):
        self.orders, self.clock, self.days = orders, clock, authorization_days
        self.ledgers: dict[str, Ledger] = {}
        self.keys: dict[str, tuple[datetime, int, dict, dict]] = {}  # key → (at, status, body, headers)

    # -- what a read shows ---------------------------------------------------------------------
    def view(self, order, now: datetime) -> dict:
        """The order's Order Management body with its captures, refunds, amounts and status."""
        body = order.merchant_view(now, self.days)
        with self.orders.lock:
            ledger = copy.deepcopy(self.ledgers.get(order.order_id) or Ledger())
        captured = sum(c["captured_amount"] for c in ledger.captures)
        refunded = sum(r["refunded_amount"] for r in ledger.refunds)
        expires = ledger.expires_at or order.completed_at + timedelta(days=self.days)
        body.update(captured_amount=captured, refunded_amount=refunded, expires_at=iso(expires),
                    status=self._status(order, ledger, now, captured),
                    captures=copy.deepcopy(ledger.captures), refunds=copy.deepcopy(ledger.refunds))
        open_ = body["status"] in ("AUTHORIZED", "PART_CAPTURED")
        body["remaining_authorized_amount"] = (body["order_amount"] - captured) if open_ else 0
        return body

    def _status(self, order, ledger: Ledger, now: datetime, captured: int) -> str:
        if ledger.cancelled or order.fraud_status == "REJECTED":
            return "CANCELLED"
        amount = order.data.get("order_amount") or 0
        if captured >= amount or (ledger.released and captured):
            return "CAPTURED"
        if ledger.released:
            return "CANCELLED"
        expires = ledger.expires_at or order.completed_at + timedelta(days=self.days)
        if now >= expires:
            return "EXPIRED" if not captured else "CAPTURED"
        return "PART_CAPTURED" if captured else "AUTHORIZED"

    # -- the actions ---------------------------------------------------------------------------
    def act(self, order_id: str, action, key: str | None,
            account: str | None = None) -> tuple[int, dict, dict]:
        """Run `action(order, ledger, view, now)` → (status, body, headers) once per key of
        `account` (the caller's: another account's orders are NO_SUCH_ORDER to it)."""
        key = f"{account}\n{key}" if key else None
        with self.orders.lock:
            now = self.clock.now()
            self.keys = {k: v for k, v in self.keys.items() if now - v[0] < KEY_TTL}
            if key and key in self.keys:
                _, status, body, headers = self.keys[key]
                return status, body, headers
            order = self.orders.merchant_order(order_id, account)  # 404 NO_SUCH_ORDER
            ledger = self.ledgers.setdefault(order_id, Ledger())
            try:
                answer = action(order, ledger, self.view(order, now), now)
            except ApiError as exc:  # a refusal is the first answer too
                answer = (exc.status, {"error_code": exc.error_code,
                                       "error_messages": exc.messages,
                                       "correlation_id": str(uuid.uuid4())}, {})
            if key:
                self.keys[key] = (now, *answer)
            return answer


def _amount(body, name: str) -> int:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise bad_value([name])
    return value


def _lines(body):
    lines = body.get("order_lines")
    if lines is not None and not isinstance(lines, list):
        raise bad_value(["order_lines"])
    return copy.deepcopy(lines) if lines else []


def capture(order, ledger: Ledger, view: dict, now: datetime):
    body = request.get_json(silent=True)
    amount = _amount(body, "captured_amount")
    assert isinstance(body, dict)  # _amount refused anything else
    if view["status"] not in ("AUTHORIZED", "PART_CAPTURED") or amount > view["remaining_authorized_amount"]:
        raise ApiError(403, "CAPTURE_NOT_ALLOWED", "Capture not allowed.")
    capture_id = str(uuid.uuid4())
    ledger.captures.append({"capture_id": capture_id, "captured_amount": amount,
                            "captured_at": iso(now), "description": body.get("description"),
                            "reference": body.get("reference"), "order_lines": _lines(body),
                            "refunded_amount": 0})
    return 201, {}, {"Capture-Id": capture_id,
                     "Location": _location(order.order_id, "captures", capture_id)}


def refund(order, ledger: Ledger, view: dict, now: datetime):
    body = request.get_json(silent=True)
    amount = _amount(body, "refunded_amount")
    assert isinstance(body, dict)  # _amount refused anything else
    if amount > view["captured_amount"] - view["refunded_amount"]:
        raise ApiError(403, "REFUND_NOT_ALLOWED", "Over refund is not allowed. Refund not possible.")
    refund_id = str(uuid.uuid4())
    ledger.refunds.append({"refund_id": refund_id, "refunded_amount": amount,
                           "refunded_at": iso(now), "description": body.get("description"),
                           "reference": body.get("reference"), "order_lines": _lines(body)})
    return 201, {}, {"Refund-Id": refund_id,
                     "Location": _location(order.order_id, "refunds", refund_id)}


def cancel(order, ledger: Ledger, view: dict, now: datetime):
    if view["captured_amount"]:
        raise ApiError(403, "CANCEL_NOT_ALLOWED", "Order has previous captures. Cancel not possible.")
    if view["status"] != "AUTHORIZED":
        raise ApiError(403, "CANCEL_NOT_ALLOWED", f"Order is {view['status']}. Cancel not possible.")
    ledger.cancelled = True
    return 204, {}, {}


def extend(order, ledger: Ledger, view: dict, now: datetime):
    if view["status"] not in ("AUTHORIZED", "PART_CAPTURED"):
        raise ApiError(403, "NOT_ALLOWED", f"Order is {view['status']}. "
                       "Authorization time cannot be extended.")
    box = current_app.extensions["kco_sandbox_om"]
    latest = order.completed_at + MAX_AUTHORIZATION
    if now + timedelta(days=box.days) > latest:
        raise ApiError(403, "NOT_ALLOWED", "Authorization cannot be extended beyond 180 days.")
    ledger.expires_at = now + timedelta(days=box.days)
    return 204, {}, {}


def release(order, ledger: Ledger, view: dict, now: datetime):
    if view["status"] == "CAPTURED":
        raise ApiError(403, "NOT_ALLOWED",
                       "Order is fully captured. Remaining authorization cannot be released.")
    if view["status"] not in ("AUTHORIZED", "PART_CAPTURED"):
        raise ApiError(403, "NOT_ALLOWED", f"Order is {view['status']}. "
                       "Remaining authorization cannot be released.")
    ledger.released = True
    return 204, {}, {}


def merchant_references(order, ledger: Ledger, view: dict, now: datetime):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise bad_value(["body"])
    changes = {k: body[k] for k in ("merchant_reference1", "merchant_reference2") if k in body}
    for name, value in changes.items():
        if not isinstance(value, str) or len(value) > 255:
            raise bad_value([name])
    box = current_app.extensions["kco_sandbox"]

    def apply(stored):
        stored.data.update(changes)
    box.orders.mutate(order.order_id, apply, checkout=False)
    return 204, {}, {}


def _location(order_id: str, kind: str, item_id: str) -> str:
    return f"{base_url()}/ordermanagement/v1/orders/{quote(order_id, safe='')}/{kind}/{item_id}"


ACTIONS = {"captures": capture, "refunds": refund, "cancel": cancel,
           "extend-authorization-time": extend, "release-remaining-authorization": release}


def _answer(status: int, body: dict, headers: dict) -> Response:
    response = jsonify(body) if body else Response(status=status)
    response.status_code = status
    response.headers.update(headers)
    return response


@om.post("/orders/<order_id>/<any(captures, refunds, cancel, 'extend-authorization-time', "
         "'release-remaining-authorization'):action>")
def post_action(order_id: str, action: str):
    box = current_app.extensions["kco_sandbox_om"]
    return _answer(*box.act(order_id, ACTIONS[action], request.headers.get(IDEMPOTENCY_HEADER),
                            caller()))


@om.patch("/orders/<order_id>/merchant-references")
def patch_references(order_id: str):
    box = current_app.extensions["kco_sandbox_om"]
    return _answer(*box.act(order_id, merchant_references, request.headers.get(IDEMPOTENCY_HEADER),
                            caller()))


def init_app(app, orders, clock) -> OrderManagement:
    box = OrderManagement(orders, clock, int(app.config["SANDBOX_AUTHORIZATION_DAYS"]))
    app.extensions["kco_sandbox_om"] = box
    app.register_blueprint(om)
    return box
