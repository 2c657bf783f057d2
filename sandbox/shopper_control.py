"""`/_sandbox/orders/{id}/…`: the shopper's actions and the per-order callback log (no auth;
bind to loopback). Thin views over shopper.py; errors use Klarna's error shape.

Each action answers 200 once it ran — whatever the merchant replied — with what happened:
`{"action", "callback", "outcome", "shopper_sees", "problems", "location", "log_entry",
"order"}`; 400 for a bad control body, 404 for an unknown or expired order, 409 when the order
is complete (or, for fraud, not PENDING) or the checkout is suspended.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from sandbox.api import sandbox
from sandbox.control import describe
from sandbox.orders import ApiError

shopper_control = Blueprint("sandbox_shopper", __name__, url_prefix="/_sandbox/orders/<order_id>")


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _with_order(order_id: str, result: dict):
    return jsonify({**result, "order": describe(*sandbox().orders.inspect(order_id))})


@shopper_control.post("/address")
def address(order_id: str):
    body = _body()
    return _with_order(order_id, sandbox().shopper.change_address(
        order_id, body.get("billing_address"), body.get("shipping_address")))


@shopper_control.post("/shipping_option")
def shipping_option(order_id: str):
    return _with_order(order_id, sandbox().shopper.select_shipping_option(order_id, _body().get("id")))


@shopper_control.post("/purchase")
def purchase(order_id: str):
    return _with_order(order_id, sandbox().shopper.purchase(order_id, _body()))


@shopper_control.post("/fraud")
def fraud(order_id: str):
    return _with_order(order_id, sandbox().shopper.fraud_decision(order_id, _body().get("decision")))


@shopper_control.post("/suspend")
def suspend(order_id: str):
    return jsonify(sandbox().shopper.suspend(order_id, _body().get("auto_resume", True) is not False))


@shopper_control.post("/resume")
def resume(order_id: str):
    return jsonify(sandbox().shopper.resume(order_id))


@shopper_control.post("/push")
def push_now(order_id: str):
    box = sandbox()
    order, _ = box.orders.inspect(order_id)
    if not order.complete:
        raise ApiError(409, "CONFLICT", f"Order {order_id} is not complete: nothing to push")
    return jsonify({"log_entry": box.deliveries.push_now(order_id)})


@shopper_control.get("/log")
def callback_log(order_id: str):
    box = sandbox()
    order, alive = box.orders.inspect(order_id)  # 404 for an id never seen
    campaigns = box.deliveries.campaigns(order_id)
    for campaign in campaigns:  # acknowledged stops the pushes; say so before the next is due
        if campaign["kind"] == "push" and order.acknowledged and campaign["state"] != "cancelled":
            campaign.update(state="acknowledged", next_minute=None, next_in_seconds=None)
    return jsonify({
        "order_id": order_id, "status": order.status, "acknowledged": order.acknowledged,
        "fraud_status": order.fraud_status, "entries": box.log.entries(order_id),
        "push": next((c for c in reversed(campaigns) if c["kind"] == "push"), None),
        "notifications": [c for c in campaigns if c["kind"] == "notification"],
        "time_scale": box.deliveries.scheduler.scale,
    })
