"""Klarna's Checkout API v3 and Order Management API, as documented (docs/klarna.md §6, §7).

Every request passes, in order: fault injection (faults.py), HTTP Basic auth against the
sandbox's accounts (accounts.py; 401 with Klarna's error body), the view, which sees only the
orders of the account that authenticated; and every answer is written to the request log,
with the account that made the call.
"""
from __future__ import annotations

import time
import uuid
from http import HTTPStatus
from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, jsonify, request

from sandbox import accounts, snippet
from sandbox.orders import ApiError

checkout = Blueprint("checkout", __name__, url_prefix="/checkout/v3")
ordermanagement = Blueprint("ordermanagement", __name__, url_prefix="/ordermanagement/v1")
ORDER_PATH = "/checkout/v3/orders/"
IDEMPOTENCY_HEADER = "Klarna-Idempotency-Key"


def sandbox():
    return current_app.extensions["kco_sandbox"]


def error_response(status: int, error_code: str | None = None, messages=(), headers=None) -> Response:
    """Klarna's error object: `error_code`, `error_messages`, `correlation_id` [S26][S43]."""
    known = status in HTTPStatus._value2member_map_
    if error_code is None:
        error_code = HTTPStatus(status).name if known else "ERROR"
    messages = list(messages) or [HTTPStatus(status).phrase if known else f"HTTP {status}"]
    body = {"error_code": error_code, "error_messages": messages,
            "correlation_id": str(uuid.uuid4())}
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def base_url() -> str:
    """Where clients reach the sandbox: SANDBOX_PUBLIC_URL, else the URL of this request."""
    public = current_app.config.get("SANDBOX_PUBLIC_URL")
    return public.rstrip("/") if public else request.host_url.rstrip("/") + request.script_root


def _order_json(order, status: int = 200, headers=None) -> Response:
    body = order.checkout_view()
    body["html_snippet"] = snippet.render(body, base_url())
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


# --- what every API request goes through ------------------------------------------------------

def before_api_request():
    fault = sandbox().faults.take(request.endpoint)
    if fault is not None:
        g.sandbox_fault = True
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status is not None:
            return _fault_response(fault)
    return _authenticate()


def _fault_response(fault) -> Response:
    if fault.body is None:
        response = error_response(fault.status, fault.error_code, fault.error_messages)
    elif isinstance(fault.body, str):
        response = Response(fault.body, status=fault.status, mimetype="text/html")
    else:
        response = jsonify(fault.body)
        response.status_code = fault.status
    response.headers.update(fault.headers)
    return response


def _authenticate():
    auth = request.authorization
    account = None
    if auth is not None and auth.type == "basic":
        account = accounts.authenticate(sandbox().accounts, auth.username or "", auth.password or "")
    if account is None:
        return error_response(401, "UNAUTHORIZED", ["Invalid or missing credentials"],
                              {"WWW-Authenticate": 'Basic realm="Klarna sandbox"'})
    g.sandbox_account = account
    return None


def caller() -> str | None:
    """The API username of this request (its orders are the only ones it sees)."""
    account = g.get("sandbox_account")
    return account.username if account else None


def caller_region() -> str | None:
    account = g.get("sandbox_account")
    return account.region if account else None


def after_api_request(response: Response) -> Response:
    try:
        body = request.get_json(silent=True) if request.method == "POST" else None
    except Exception:  # e.g. 413: the body was never read
        body = None
    sandbox().requests.record({
        "at": time.time(), "method": request.method, "endpoint": request.endpoint,
        "path": request.script_root + request.path, "query": request.query_string.decode(),
        "order_id": (request.view_args or {}).get("order_id"), "status": response.status_code,
        "idempotency_key": request.headers.get(IDEMPOTENCY_HEADER),
        "user_agent": request.headers.get("User-Agent"), "fault": g.get("sandbox_fault", False),
        "account": caller() or (request.authorization.username if request.authorization else None),
        "body": body,
    })
    return response


for _bp in (checkout, ordermanagement):
    _bp.before_request(before_api_request)
    _bp.after_request(after_api_request)


# --- Checkout API -----------------------------------------------------------------------------

@checkout.post("/orders")
def create_order():
    order, _ = sandbox().orders.create(request.get_json(silent=True),
                                       request.headers.get(IDEMPOTENCY_HEADER), caller(), caller_region())
    location = base_url() + ORDER_PATH + quote(order.order_id, safe="")
    return _order_json(order, 201, {"Location": location})


@checkout.get("/orders/<order_id>")
def read_order(order_id: str):
    return _order_json(sandbox().orders.read(order_id, caller()))


@checkout.post("/orders/<order_id>")
def update_order(order_id: str):
    return _order_json(sandbox().orders.update(order_id, request.get_json(silent=True), caller(),
                                               caller_region()))


# --- Order Management API ---------------------------------------------------------------------

@ordermanagement.get("/orders/<order_id>", endpoint="read_order")
def read_merchant_order(order_id: str):
    box = sandbox()
    order = box.orders.merchant_order(order_id, caller())
    return jsonify(current_app.extensions["kco_sandbox_om"].view(order, box.clock.now()))  # om.py


@ordermanagement.post("/orders/<order_id>/acknowledge")
def acknowledge_order(order_id: str):
    sandbox().orders.acknowledge(order_id, request.headers.get(IDEMPOTENCY_HEADER), caller())
    return Response(status=204)


def handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.error_code, exc.messages)
