"""The storefront API (docs/design.md §7) and the operator endpoints `/healthz` and `/metrics`.

Views are thin: parse (flask-smorest, storefront/schemas.py) → decide (rules/checkout.py) →
record (Store.apply, one transaction) → reply (dumped by the same schemas). Every answer under
/api, errors included, is JSON; errors use our body (docs/design.md §7.4) and name the problem: the domain's
exceptions become replies in the handlers at the end of this module. Authentication is
`Authorization: Bearer {KCO_API_KEY}`, or the session's browser token (callbacks/web/browser.py),
which opens that one session's state, feed, cart, market and checkout load, and nothing else.

Long-polls (`wait=S`) sleep in callbacks/store/notify.py without a database connection; see
docs/long-poll.md for how many gunicorn threads serve how many waiting browsers.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from flask_smorest import abort

from callbacks.klarna.lifecycle import EmptyCart, KlarnaUnavailable, NoSession, NotSynced
from callbacks.rules import attachment
from callbacks.rules.cart import KEEP, CartRefused, set_cart
from callbacks.rules.checkout import OrderComplete
from callbacks.rules.pricing import CartItem, PricingError
from callbacks.store import notify
from callbacks.store.database import LeaseBusy
from callbacks.storefront import schemas
from callbacks.storefront.api import Api, Blueprint, StoredJSON, make_api
from callbacks.web import auth, browser, errors, metrics, slots
from callbacks.web.errors import api_error
from callbacks.web.schemas import SESSION_ID

log = logging.getLogger(__name__)

bp = Blueprint("storefront", __name__, url_prefix="/api", description="The storefront API.")
errors.answer_body_errors(bp)
ops = Blueprint("ops", __name__, description="Operator endpoints.")

BEARER_OR_BROWSER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"browserToken": []}]
STATE_HEADERS = {"Cache-Control": "private, no-cache"}


def kco():
    return current_app.extensions["kco"]


# -- authentication ------------------------------------------------------------------------
@bp.before_request
def authenticate():
    sid = (request.view_args or {}).get("sid")
    if not (auth.api_key_ok() or browser.token_opens()):
        return auth.unauthorized("this session's unexpired browser token"
                                 if request.endpoint in browser.OPENS else None)
    if sid is not None and not SESSION_ID.match(sid):
        return api_error(400, "The session id must be 1–128 characters of A–Z a–z 0–9 . _ ~ -.",
                         {"session": ["Not a valid session id."]})


# -- endpoints -------------------------------------------------------------------------------
@bp.put("/sessions/<sid:sid>/cart")
@bp.etag
@bp.arguments(schemas.CartSchema)
@bp.response(200, schemas.StateSchema, description="The session's state.")
@bp.documents(400, 401, 409, 413, 422, 502, 503)
@bp.doc(security=BEARER_OR_BROWSER)
def put_cart(cart: dict, sid: str):
    """Replace the cart and re-price it

    Stores the cart (a new session starts in the shop's default market), re-prices it and
    updates the open Klarna order, if any."""
    app = kco()
    items = [CartItem(i["reference"], i["quantity"]) for i in cart["items"]]
    with slots.slot():  # pricing and writing the cart; not the Klarna update below, which waits
        state, decision = app.store.apply(sid, lambda tx: set_cart(
            app.shop, tx.state, sid, items, cart["coupon"],
            cart.get("merchant_reference1", KEEP)))
    if decision.event_type:
        app.lifecycle.sync(sid)
        state = app.store.get_state(sid)
    return state, STATE_HEADERS


@bp.post("/sessions/<sid:sid>/checkout")
@bp.arguments(schemas.CheckoutLoadSchema, required=False)
@bp.response(200, schemas.CheckoutReplySchema, description="The order and its snippet.")
@bp.documents(400, 401, 404, 409, 413, 422, 502, 503)
@bp.doc(security=BEARER_OR_BROWSER)
def load_checkout(body: dict, sid: str):
    """Load Klarna Checkout for the session

    Klarna's load flow (Klarna's cart-update guide, docs/klarna.md §6): reads the session's
    Klarna order, updates it when it differs, and creates a new one on 404, any 4xx, 5xx or
    network error. A paid session is never sold again: once its order is complete (pushed,
    read as `checkout_complete`, or an update refused as READ_ONLY_ORDER, each verified through
    Order Management), the reply is the completed order, `status: "checkout_complete"`, with
    Klarna's confirmation snippet while Klarna still renders one, and no new order is made.
    A buyable checkout answers `status: "checkout_incomplete"`. The body is empty, or sets the
    shop's order number (`merchant_reference1`) on the way (ignored once complete)."""
    loaded = kco().lifecycle.load_checkout(sid, **body)  # merchant_reference1, when sent
    token = browser.issue(sid)  # a fresh 48 h for the page, as Klarna's order got one
    return {"status": loaded.state["klarna"]["status"], "order_id": loaded.order["order_id"],
            "html_snippet": loaded.order.get("html_snippet"),
            "poll_token": token["browser_token"], **token, "state": loaded.state}


@bp.post("/sessions/<sid:sid>/browser-token")
@bp.response(200, schemas.NewBrowserTokenSchema, description="A token for the page's session.")
@bp.documents(400, 401)
def new_browser_token(sid: str):
    """A browser token for the session

    For the merchant's back end (API key only): hand the page a token for its session."""
    return {"session": sid, **browser.issue(sid)}, {"Cache-Control": "no-store"}


@bp.put("/sessions/<sid:sid>/market")
@bp.etag
@bp.arguments(schemas.MarketChangeSchema)
@bp.response(200, schemas.StateSchema, description="The session's state.")
@bp.documents(400, 401, 404, 409, 413, 422, 502, 503)
@bp.doc(security=BEARER_OR_BROWSER)
def put_market(change: dict, sid: str):
    """Move the session to another market

    Without `locale` the market's locale is picked as in docs/design.md §5.7."""
    app = kco()
    market = app.shop.market(change["country"])
    if market is None:
        problem = f"{change['country']} is not one of the shop's markets ({', '.join(app.shop.markets)})."
        abort(422, message=problem, errors={"country": [problem]})
    locale = change["locale"]
    if locale is not None:
        locale = next((loc for loc in market.locales if loc.lower() == locale.lower()), None)
        if locale is None:
            problem = (f"{change['locale']} is not a locale of {market.country} "
                       f"({', '.join(market.locales)}).")
            abort(422, message=problem, errors={"locale": [problem]})
    app.lifecycle.change_market(sid, market.country, locale)
    app.lifecycle.sync(sid)
    return app.store.get_state(sid), STATE_HEADERS


@bp.put("/sessions/<sid:sid>/attachment")
@bp.arguments(schemas.AttachmentSchema)
@bp.response(200, schemas.AttachmentReplySchema, description="What is stored (never the body).")
@bp.documents(400, 401, 404, 409, 413, 422, 502, 503)
def put_attachment(body: dict, sid: str):
    """Set the order's extra merchant data

    For the merchant's back end (API key only): Klarna's extra merchant data (EMD) for this
    session's orders, sent as the order's `attachment` on every create and update. It is kept
    apart from the state, the events and the logs (docs/design.md §7.5). Setting it again
    replaces it; once the order is complete it cannot change (409)."""
    app = kco()
    content_type, text = body["content_type"], body["body"]

    def decide(tx):
        if tx.state is None:
            raise NoSession(sid)
        old = tx.attachment_digest()
        decision = attachment.attachment_set(tx.state, sid, content_type, text, old)
        if decision.event_type:
            tx.set_attachment(content_type, text, attachment.digest(content_type, text))
        return decision

    state, decision = app.store.apply(sid, decide)
    if decision.event_type:
        app.lifecycle.sync(sid)  # the open Klarna order gets it now
    return {"session": sid, "content_type": content_type,
            "size": len(text.encode("utf-8", "surrogatepass")), "version": state["version"]}


@bp.get("/sessions/<sid:sid>/state")
@bp.etag
@bp.arguments(schemas.PollTokenQuery, location="query")
@bp.response(200, schemas.StateSchema, description="The session's state.")
@bp.documents(400, 401, 404)
@bp.doc(security=BEARER_OR_BROWSER)
def get_state(_query: dict, sid: str):
    """The session's state, with an ETag

    If-None-Match with the ETag of a state already held: 304 while it is unchanged."""
    # Sent as stored, neither parsed nor dumped again: a 1000-line cart's state is ~300 KB of
    # JSON, and the round trip was most of the read's CPU (BENCHMARKS.md). StateSchema still
    # documents it, and tests/test_storefront.py checks that it dumps a stored state unchanged.
    stored = kco().store.get_state_json(sid)
    if stored is None:
        raise NoSession(sid)
    bp.set_etag(StoredJSON(stored))  # 304 here if If-None-Match holds it
    return Response(stored, mimetype="application/json", headers=STATE_HEADERS)


def feed(sid: str | None, after: int, wait: float):
    if sid is not None and not kco().store.has_session(sid):
        raise NoSession(sid)
    events = current_app.extensions["kco_notify"].events(after, sid, wait)
    return {"events": events, "last_id": events[-1]["id"] if events else after}, {"Cache-Control": "no-store"}


@bp.get("/sessions/<sid:sid>/events")
@bp.arguments(schemas.SessionFeedQuery, location="query", error_status_code=400)
@bp.response(200, schemas.EventsSchema, description="Events with id > `after`, oldest first (at most 500).")
@bp.documents(400, 401, 404, 503)
@bp.doc(security=BEARER_OR_BROWSER)
def session_events(query: dict, sid: str):
    """The session's events (long-poll)"""
    return feed(sid, query["after"], query["wait"])


@bp.get("/events")
@bp.arguments(schemas.FeedQuery, location="query", error_status_code=400)
@bp.response(200, schemas.EventsSchema, description="Events with id > `after`, oldest first (at most 500).")
@bp.documents(400, 401, 503)
def all_events(query: dict):
    """Every session's events (long-poll)"""
    return feed(None, query["after"], query["wait"])


@bp.get("/markets")
@bp.response(200, schemas.MarketsSchema, description="Country, currency and locales per market.")
@bp.documents(401)
def list_markets():
    """The shop's markets"""
    shop = kco().shop
    return {"default_country": shop.default_country, "markets": [
        {"country": m.country, "currency": m.currency, "locales": list(m.locales),
         "default_locale": m.default_locale} for m in shop.markets.values()]}


@ops.get("/healthz")
@ops.response(200, schemas.HealthSchema, description="The database answers.")
@ops.documents(503)
@ops.doc(security=[])
def healthz():
    """Liveness: the database answers"""
    try:
        kco().store.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is "down"
        log.warning("health check failed: %s: %s", type(exc).__name__, exc)
        abort(503, message=f"The database does not answer ({type(exc).__name__}).",
              headers={"Retry-After": "5", "Cache-Control": "no-store"})
    return {"status": "ok"}, {"Cache-Control": "no-store"}


# -- the domain's exceptions, as replies -------------------------------------------------------
@bp.errorhandler(NoSession)
def _no_session(exc: NoSession):
    return api_error(404, f"No session {exc.args[0]!r}: PUT its cart first.", {"session": ["Unknown session."]})


@bp.errorhandler(CartRefused)
def _cart_refused(exc: CartRefused):
    return api_error(422, exc.message, exc.errors)


@bp.errorhandler(PricingError)
def _cannot_sell(exc: PricingError):  # PUT market: the cart has an item the market does not sell
    return api_error(422, f"The cart cannot be sold in that market: {exc}", {"country": [str(exc)]})


@bp.errorhandler(OrderComplete)
def _order_complete(exc: OrderComplete):
    return api_error(409, "The session's Klarna order is complete: its cart and market can no "
                          "longer change. Start a new session for a new order.",
                     {"session": ["Order complete."]})


@bp.errorhandler(EmptyCart)
def _empty_cart(exc: EmptyCart):
    return api_error(409, "The cart is empty: PUT items before loading checkout.",
                     {"items": ["Klarna needs at least one order line."]})


@bp.errorhandler(LeaseBusy)
def _busy(exc: LeaseBusy):
    return api_error(409, str(exc), headers={"Retry-After": "1"})


@bp.errorhandler(KlarnaUnavailable)
def _klarna_unavailable(exc: KlarnaUnavailable):
    return api_error(502, f"Klarna refused or could not be reached: {public_text(exc)}",
                     {"klarna": klarna_errors(exc)})


@bp.errorhandler(NotSynced)
def _not_synced(exc: NotSynced):
    """A cart or market change is saved, but the open Klarna order is not in step with it."""
    if isinstance(exc.cause, LeaseBusy):
        return api_error(409, f"Saved, but {exc.cause}; load checkout again to bring Klarna in step.",
                         headers={"Retry-After": "1"})
    return api_error(502, f"Saved, but Klarna could not be updated ({public_text(exc.cause)}); load checkout "
                          "again (POST …/checkout) to get a working order.",
                     {"klarna": klarna_errors(exc.cause)})


@bp.errorhandler(notify.TooManyWaiters)
def _too_many_waiters(exc: notify.TooManyWaiters):
    return api_error(503, "Too many long-polls are waiting on this instance; retry shortly.",
                     headers={"Retry-After": "2"})


def public_text(exc: KlarnaUnavailable) -> str:
    """What a shopper's browser may read of a failed Klarna call. When Klarna answered, its
    error code and messages (meant for logs, and free of anything of ours); when it did not,
    only that: the network error's own text names Klarna's host and port and the HTTP
    library's internals, which stay in the log line the client writes."""
    if exc.error.is_network_error:
        return f"Klarna could not be reached ({exc.error.error_code})"
    return str(exc.error)


def klarna_errors(exc: KlarnaUnavailable) -> list[str]:
    if exc.error.is_network_error:
        return [exc.error.error_code or "NETWORK_ERROR"]
    return [f"{exc.error.error_code}: {m}" for m in exc.error.error_messages] or [exc.error.error_code or "error"]


def init_app(app: Flask) -> Api:
    registry = metrics.init_app(app)
    notify.init_app(app, gauge=registry.waiters)
    api = make_api(app)
    api.register_blueprint(bp)
    api.register_blueprint(ops)
    return api
