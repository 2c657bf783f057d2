"""`/_sandbox/...`: what tests and the demo steer the sandbox with (no auth; bind to loopback).

All bodies are JSON; errors use Klarna's error shape. See the package docstring for the list.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from sandbox import snippet
from sandbox.api import base_url, error_response, sandbox
from sandbox.faults import ENDPOINTS, Fault
from sandbox.orders import FRAUD_STATUSES, iso

control = Blueprint("sandbox_control", __name__, url_prefix="/_sandbox")


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _bad(field: str, message: str | None = None):
    return error_response(400, "BAD_VALUE", [message or f"Bad value: {field}"])


def describe(order, alive: bool) -> dict:
    """Everything a test may want to assert about one order."""
    box = sandbox()
    view = order.checkout_view()
    view["html_snippet"] = snippet.render(view, base_url())
    return {
        "order_id": order.order_id, "status": order.status, "fraud_status": order.fraud_status,
        "account": order.account,  # the API username that created it
        "klarna_reference": order.klarna_reference, "expired": not alive,
        "touched_at": iso(order.touched_at), "expires_at": iso(order.expires_at(box.orders.ttl)),
        "completed_at": iso(order.completed_at),
        "acknowledged": order.acknowledged,
        "displayed_at_purchase": order.displayed_at_purchase,
        "last_idempotency_key": order.acknowledge_keys[-1] if order.acknowledge_keys else None,
        "acknowledge_keys": list(order.acknowledge_keys),
        "merchant_urls": order.data.get("merchant_urls"),
        "order": view,
        "merchant_order": order.merchant_view(
            box.clock.now(), current_app.config["SANDBOX_AUTHORIZATION_DAYS"]) if order.complete else None,
    }


@control.get("/orders")
def list_orders():
    return jsonify({"orders": [{"order_id": o.order_id, "status": o.status, "expired": not alive,
                                "fraud_status": o.fraud_status, "acknowledged": o.acknowledged}
                               for o, alive in sandbox().orders.all()]})


@control.get("/orders/<order_id>")
def inspect_order(order_id: str):
    return jsonify(describe(*sandbox().orders.inspect(order_id)))


@control.post("/orders/<order_id>/complete")
def complete_order(order_id: str):
    body = _body()
    fraud_status = body.get("fraud_status", current_app.config["SANDBOX_DEFAULT_FRAUD_STATUS"])
    if fraud_status not in FRAUD_STATUSES:
        return _bad("fraud_status")
    sandbox().orders.complete(order_id, fraud_status, body)
    return jsonify(describe(*sandbox().orders.inspect(order_id)))


@control.post("/orders/<order_id>/fraud_status")
def set_fraud_status(order_id: str):
    fraud_status = _body().get("fraud_status")
    if fraud_status not in FRAUD_STATUSES:
        return _bad("fraud_status")
    sandbox().orders.set_fraud_status(order_id, fraud_status)
    return jsonify(describe(*sandbox().orders.inspect(order_id)))


@control.post("/orders/<order_id>/touch")
def touch_order(order_id: str):
    sandbox().orders.touch(order_id)
    return jsonify(describe(*sandbox().orders.inspect(order_id)))


@control.get("/faults")
def list_faults():
    return jsonify({"faults": sandbox().faults.pending(), "endpoints": list(ENDPOINTS)})


@control.post("/faults")
def add_fault():
    try:
        fault, count = Fault.parse(_body())
    except ValueError as exc:
        return _bad(str(exc))
    sandbox().faults.add(fault, count)
    return jsonify({"faults": sandbox().faults.pending()}), 201


@control.delete("/faults")
def clear_faults():
    sandbox().faults.clear()
    return "", 204


@control.get("/clock")
def read_clock():
    clock = sandbox().clock
    return jsonify({"now": iso(clock.now()), "offset_seconds": clock.offset_seconds})


@control.post("/clock")
def advance_clock():
    seconds = _body().get("advance")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return _bad("advance", "Bad value: advance (seconds >= 0)")
    clock = sandbox().clock
    clock.advance(seconds)
    return jsonify({"now": iso(clock.now()), "offset_seconds": clock.offset_seconds})


@control.get("/requests")
def list_requests():
    entries = sandbox().requests.entries(request.args.get("endpoint"), request.args.get("order_id"))
    return jsonify({"requests": entries, "count": len(entries)})


@control.delete("/requests")
def clear_requests():
    sandbox().requests.clear()
    return "", 204


@control.get("/tms")
def tms_table():
    """The Shipping Assistant's transport management system: its options by country."""
    return jsonify(sandbox().assistant.describe())


@control.put("/tms")
def set_tms_table():
    sandbox().assistant.configure(_body())
    return jsonify(sandbox().assistant.describe())


@control.delete("/tms")
def reset_tms_table():
    sandbox().assistant.reset()
    return jsonify(sandbox().assistant.describe())


@control.post("/reset")
def reset():
    box = sandbox()
    box.assistant.reset()
    box.orders.reset()
    box.faults.clear()
    box.requests.clear()
    box.clock.reset()
    if box.deliveries is not None:
        box.deliveries.reset()
        box.log.clear()
        box.shopper.reset()
    return "", 204
