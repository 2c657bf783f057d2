"""The sandbox: a local fake Klarna speaking the Checkout v3 and Order Management APIs
(docs/design.md §9, docs/klarna.md §6–§7). A separate Flask app; run it with ONE process, since
orders live in memory:

    flask --app sandbox_wsgi run -p 8001
    gunicorn sandbox_wsgi:app --workers 1 --threads 16 -b 127.0.0.1:8001

Klarna's API (HTTP Basic auth against the accounts of SANDBOX_ACCOUNTS, `user:pass[:region],…`;
unset: SANDBOX_USERNAME/SANDBOX_PASSWORD, default sandbox/sandbox, selling any currency, and the
example shop's North America account sandbox-na/sandbox-na; wrong or missing → 401 with
Klarna's error body `{error_code, error_messages, correlation_id}`). Each account sees only the
orders it created (another's are 404), and one with a region refuses a currency the region
does not sell (400 `Bad value: purchase_currency`) — accounts.py:

    POST /checkout/v3/orders                     201 + Location + order | 400 BAD_VALUE
    GET  /checkout/v3/orders/{id}                200 | 404 NOT_FOUND (unknown or expired)
    POST /checkout/v3/orders/{id}                200 (unsent properties stay) | 400 BAD_VALUE
                                                 | 403 READ_ONLY_ORDER once complete | 404
    GET  /ordermanagement/v1/orders/{id}         200 MerchantOrder | 404 NO_SUCH_ORDER (not completed)
    POST /ordermanagement/v1/orders/{id}/acknowledge   204 (idempotent) | 404 NO_SUCH_ORDER

`BAD_VALUE` messages read `Bad value: <field>` (`order_lines[1].total_tax_amount`, `locale`,
`merchant_urls.push`, …) for every constraint of Klarna's order schema (order_schema.py:
lengths, patterns, enums, ranges, required fields, https callback URLs — loopback hosts
excepted, or all with SANDBOX_ALLOW_HTTP_CALLBACKS) and amounts breaking
`callbacks.rules.amounts.order_errors`. A Checkout order expires 48 h (SANDBOX_ORDER_TTL seconds) after
the last merchant update or shopper interaction, on the sandbox's clock.

Test controls (no auth; JSON in and out):

    GET    /_sandbox/orders                      summary of every order
    GET    /_sandbox/orders/{id}                 status, fraud_status, expired, expires_at,
                                                 acknowledged (count), last_idempotency_key,
                                                 merchant_urls, order, merchant_order
    POST   /_sandbox/orders/{id}/complete        {"fraud_status": "ACCEPTED"|"PENDING"|"REJECTED",
                                                  "billing_address"?, "shipping_address"?, "customer"?}
                                                 → checkout_complete, completed_at set; 409 if already
    POST   /_sandbox/orders/{id}/fraud_status    {"fraud_status": ...} (completed orders; 409 otherwise)
    POST   /_sandbox/orders/{id}/touch           a shopper interaction: restarts the 48 h expiry
    POST   /_sandbox/faults                      {"endpoint": "checkout.read_order", "status": 503,
                                                  "count": 2, "delay": 0.5, "error_code"?,
                                                  "error_messages"?, "body"?, "headers"?}
                                                 the next `count` requests to that endpoint wait `delay`
                                                 s, then answer `status` (without touching orders) —
                                                 or, without `status`, go through late (timeouts)
    GET    /_sandbox/faults · DELETE /_sandbox/faults      pending faults · drop them
    GET    /_sandbox/clock · POST /_sandbox/clock {"advance": seconds}
    GET    /_sandbox/requests?endpoint=&order_id=          the API request log (attempts, keys,
    DELETE /_sandbox/requests                              User-Agent, bodies, statuses)
    GET    /_sandbox/tms · PUT /_sandbox/tms {"countries"?: {"AT": [option, …]}, "failing"?}
                                                 the Shipping Assistant's TMS table (assistant.py)
    DELETE /_sandbox/tms                         the default table back
    POST   /_sandbox/reset                       forget orders, faults, log; clock back to now;
                                                 the default TMS table

Endpoint names for faults: checkout.create_order, checkout.read_order, checkout.update_order,
ordermanagement.read_order, ordermanagement.acknowledge_order.

The shopper (shopper.py, deliveries.py, replies.py; views in shopper_control.py; docs/sandbox.md):

    POST   /_sandbox/orders/{id}/address         {"billing_address", "shipping_address"?}
                                                 → country_change (billing country changed)
                                                   or address_update
    POST   /_sandbox/orders/{id}/shipping_option {"id"} → shipping_option_update
    POST   /_sandbox/orders/{id}/purchase        {"fraud_status"?, "billing_address"?,
                                                  "shipping_address"?, "customer"?}
                                                 → validation → complete → pushes
    POST   /_sandbox/orders/{id}/fraud           {"decision": "ACCEPTED"|"REJECTED"|"STOPPED"}
                                                 (a PENDING order) → notifications
    POST   /_sandbox/orders/{id}/suspend         {"auto_resume"?: true} · POST …/resume
    POST   /_sandbox/orders/{id}/push            one extra push now
    GET    /_sandbox/orders/{id}/log             the callbacks sent and the replies, and the
                                                 push / notification schedules

The checkout iframe of `html_snippet` (frame.py, templates/, static/; docs/sandbox.md): a page
a person clicks through, its actions going through the same shopper flow:

    GET    /sandbox/checkout/{id}/frame · …/confirmation · …/order (JSON)
    POST   /sandbox/checkout/{id}/address · …/shipping_option · …/purchase · …/suspend · …/resume
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask
from werkzeug.exceptions import HTTPException

from sandbox.assistant import ShippingAssistant
from sandbox.deliveries import CallbackLog, Deliveries, Scheduler
from sandbox.faults import Faults, RequestLog
from sandbox.orders import ApiError, Clock, OrderStore
from sandbox.shopper import Settings, Shopper

DEFAULTS = {
    "SANDBOX_USERNAME": "sandbox",
    "SANDBOX_PASSWORD": "sandbox",
    "SANDBOX_ACCOUNTS": None,            # "user:pass[:region],…" (accounts.py); None: the two above
    "SANDBOX_PUBLIC_URL": None,          # base URL in Location headers; default: the request's
    "SANDBOX_ORDER_TTL": 48 * 3600,      # seconds
    "SANDBOX_AUTHORIZATION_DAYS": 28,    # Order Management expires_at = completed_at + this
    "SANDBOX_DEFAULT_FRAUD_STATUS": "ACCEPTED",
    "SANDBOX_ALLOW_HTTP_CALLBACKS": False,
    "SANDBOX_TIME_SCALE": 1000,          # Klarna seconds per real second for push/notification
    "SANDBOX_CALLBACK_TIMEOUT": 3.0,     # address_update, shipping_option_update, country_change
    "SANDBOX_VALIDATION_TIMEOUT": 3.0,   # then silence approves
    "SANDBOX_VALIDATION_REQUIRED_TIMEOUT": 10.0,  # with require_validate_callback_success
    "SANDBOX_PUSH_TIMEOUT": 10.0,        # push and notification (undocumented)
    "SANDBOX_FRAME_ANCESTORS": None,     # origins that may frame the iframe; default: the shop of the order
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
}
ENVIRONMENT = ("SANDBOX_USERNAME", "SANDBOX_PASSWORD", "SANDBOX_ACCOUNTS", "SANDBOX_PUBLIC_URL",
               "SANDBOX_TIME_SCALE",
               "SANDBOX_FRAME_ANCESTORS",
               "SANDBOX_CALLBACK_TIMEOUT", "SANDBOX_VALIDATION_TIMEOUT",
               "SANDBOX_VALIDATION_REQUIRED_TIMEOUT", "SANDBOX_PUSH_TIMEOUT")


@dataclass
class Sandbox:
    """`app.extensions["kco_sandbox"]`: the state behind one sandbox app."""

    clock: Clock
    orders: OrderStore
    faults: Faults
    requests: RequestLog
    accounts: list = field(default_factory=list)  # accounts.SandboxAccount: who may call the API
    log: CallbackLog | None = None          # the callbacks sent, per order
    deliveries: Deliveries | None = None    # push and notification schedules
    shopper: Shopper | None = None
    assistant: ShippingAssistant | None = None  # Klarna's Shipping Assistant and its TMS table


def create_sandbox(config: Mapping | None = None) -> Flask:
    """`config`: overrides of DEFAULTS; SANDBOX_USERNAME/_PASSWORD/_PUBLIC_URL may also come
    from the environment (the mapping wins)."""
    from sandbox import api, control, frame, shopper_control

    app = Flask(__name__, static_folder=None)
    app.config.update(DEFAULTS)
    app.config.update({k: os.environ[k] for k in ENVIRONMENT if os.environ.get(k)})
    app.config.update(config or {})
    app.json.sort_keys = False  # type: ignore[attr-defined]  # Flask's DefaultJSONProvider

    clock = Clock()
    assistant = ShippingAssistant()
    orders = OrderStore(clock, ttl=timedelta(seconds=float(app.config["SANDBOX_ORDER_TTL"])),
                        allow_http_callbacks=bool(app.config["SANDBOX_ALLOW_HTTP_CALLBACKS"]),
                        assistant=assistant)
    app.extensions["kco_sandbox"] = _sandbox_state(app.config, clock, orders)

    app.register_blueprint(api.checkout)
    app.register_blueprint(api.ordermanagement)
    app.register_blueprint(control.control)
    app.register_blueprint(shopper_control.shopper_control)
    app.register_blueprint(frame.frame)
    from sandbox import om
    om.init_app(app, orders, clock)  # captures, refunds, cancel, … with Klarna's rules

    app.register_error_handler(ApiError, api.handle_api_error)
    app.after_request(_security_headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return api.error_response(exc.code or 500, None, [exc.description or exc.name])

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("sandbox error")
        return api.error_response(500, "INTERNAL_SERVER_ERROR", ["Unexpected sandbox error"])

    return app


def _security_headers(response):
    """Every reply: nosniff and a same-origin Referrer-Policy. The HTML pages (the checkout
    iframe and its confirmation) get a Content-Security-Policy: scripts and styles from the
    sandbox only (their data is a JSON block, no inline script runs), and framed only by the
    shop that made the order — the origin of its merchant_urls.checkout, as Klarna's iframe
    sits in the merchant's checkout page — or by SANDBOX_FRAME_ANCESTORS (space-separated
    origins) when set; by nobody for a page without an order."""
    from flask import current_app, request

    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html" and "Content-Security-Policy" not in response.headers:
        ancestors = (current_app.config.get("SANDBOX_FRAME_ANCESTORS")
                     or _shop_origin((request.view_args or {}).get("order_id")) or "'none'")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
            f"frame-ancestors {ancestors}")
    return response


def _shop_origin(order_id: str | None) -> str | None:
    from urllib.parse import urlsplit

    from flask import current_app

    if not order_id:
        return None
    try:
        order = current_app.extensions["kco_sandbox"].orders.read(order_id)
    except ApiError:
        return None
    parts = urlsplit(str((order.data.get("merchant_urls") or {}).get("checkout") or ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _sandbox_state(config: Mapping, clock: Clock, orders: OrderStore) -> Sandbox:
    log = CallbackLog(clock)
    deliveries = Deliveries(orders, log, Scheduler(float(config["SANDBOX_TIME_SCALE"])),
                            float(config["SANDBOX_PUSH_TIMEOUT"]))
    settings = Settings(float(config["SANDBOX_CALLBACK_TIMEOUT"]),
                        float(config["SANDBOX_VALIDATION_TIMEOUT"]),
                        float(config["SANDBOX_VALIDATION_REQUIRED_TIMEOUT"]),
                        config["SANDBOX_DEFAULT_FRAUD_STATUS"])
    from sandbox import accounts
    return Sandbox(clock, orders, Faults(), RequestLog(), accounts.from_config(config), log,
                   deliveries, Shopper(orders, log, deliveries, settings), orders.assistant)
