"""The demo shop: a product list with a market selector, a cart, a checkout page
around Klarna's snippet, the confirmation and the terms — the `merchant_urls` pages that
development points Klarna at, so the sandbox's redirect after a purchase lands on a real page.

The pages are the merchant's back end: they mint the shopper's session id and put that session's
browser token in the page, never KCO_API_KEY. The cookie holds the session id signed with the
service's secret, never the bare id: the id travels in Klarna's URLs (the confirmation URL names
it), so a cookie made of it would let whoever read a URL see that shopper's confirmation and
browser token. Everything else — the cart, the
market, the checkout load, following the feed — is static/kco-sync.js talking to /api with
that token, exactly as a merchant's own page would. The stable test hooks are in docs/browser.md.
"""
from __future__ import annotations

import secrets
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for
from flask_babel import force_locale, gettext, lazy_gettext
from itsdangerous import BadSignature, URLSafeSerializer

from callbacks.klarna.client import KlarnaError
from callbacks.rules.texts import N_, Text
from callbacks.web import i18n, schemas
from callbacks.web.browser import issue

COOKIE = "kco_shop_session"
bp = Blueprint("demoshop", __name__, template_folder="templates")


def kco():
    return current_app.extensions["kco"]


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["KCO_CALLBACK_SECRET"], salt="kco-demoshop-session")


def cookie_value(sid: str) -> str:
    """What the shopper's cookie holds: the session id signed (HMAC) with the service's secret."""
    return _signer().dumps(sid)


def cookie_session() -> str | None:
    """The session the cookie was issued for; None for no cookie, a bare id or a forged one."""
    try:
        sid = _signer().loads(request.cookies.get(COOKIE, ""))
    except BadSignature:
        return None
    return sid if isinstance(sid, str) and schemas.SESSION_ID.match(sid) and sid.startswith("shop-") else None


def new_session() -> str:
    return f"shop-{secrets.token_urlsafe(18)}"


def shopper_session() -> tuple[str, bool]:
    """The shopper's session id from the cookie, or a new one (True: set the cookie)."""
    sid = cookie_session()
    return (sid, False) if sid else (new_session(), True)


def set_cookie(response, sid: str) -> None:
    secure = urlsplit(current_app.config["KCO_PUBLIC_URL"]).scheme == "https"
    response.set_cookie(COOKIE, cookie_value(sid), max_age=48 * 3600, httponly=True,
                        samesite="Lax", secure=secure)


def paid(state: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return bool(state and state["klarna"].get("status") == "checkout_complete")


def catalogue() -> dict:
    """The shop file's products as the pages need them: names per language, prices per currency."""
    shop = kco().shop
    return {
        "products": [{"sku": p.sku, "name": p.name, "names": dict(p.names), "type": p.type,
                      "prices": dict(p.prices)} for p in shop.products.values()],
        "markets": [{"country": m.country, "currency": m.currency, "locales": list(m.locales),
                     "default_locale": m.default_locale}
                    for m in shop.markets.values()],
        "default_country": shop.default_country,
    }


# What static/shop.js writes into the page, in every shipped language: the shopper may switch
# market (and language) without a reload, and the script follows the state it is sent.
SCRIPT_TEXTS = {
    "add_to_cart": N_("Add to cart"),
    "not_sold_in": N_("Not sold in %(currency)s"),
    "cart_empty": N_("Your cart is empty."),
    "add_products_first": N_("Your cart is empty. <a href=\"/\">Add products</a> first."),
    "quantity_of": N_("Quantity of %(name)s"),
    "unknown": N_("unknown"),
    "paid": N_("Paid"),
    "not_paid": N_("Not paid yet"),
    "updating": N_("Updating the checkout with your latest changes…"),
    "updating_failed": N_("The checkout could not be updated yet. Trying again…"),
    "loading_checkout": N_("Loading the checkout…"),
    "checkout_failed": N_("The checkout could not be loaded."),
    "retry_checkout": N_("Try again"),
    "went_wrong": N_("Something went wrong. Please try again."),
}


def script_texts() -> dict:
    out = {}
    for lang in i18n.LANGUAGES:
        with force_locale(lang):
            out[lang] = {key: gettext(msgid) for key, msgid in SCRIPT_TEXTS.items()}
    return out


def page(template: str, sid: str, fresh: bool, state: dict | None = None, **context):
    """Rendered in the language of the shopper's market (its locale's language, English where
    no catalog is shipped), which is also the language Klarna's error_text uses. The page gets
    the state it was rendered with (null for a session not created yet), so its script asks
    nothing that would answer 404."""
    state = state if state is not None else kco().store.get_state(sid)
    locale = state["market"]["locale"] if state else kco().shop.default_market.default_locale
    g.kco_language = language = i18n.catalog_language(locale)
    if request.args.get("kco_error") == "cart_changed":  # validation's 303 back to the checkout
        context["notice"] = i18n.render(Text("cart_changed"), locale, kco().shop.texts)
    config = {"session": sid, **issue(sid), "catalogue": catalogue(), "texts": script_texts(),
              "language": language, "state": state,
              "confirmation_url": url_for("demoshop.confirmation"), **context.pop("config", {})}
    response = current_app.make_response(render_template(
        template, shop=kco().shop, config=config, lang=language,
        debug=request.args.get("debug") == "1", **context))
    if fresh:
        set_cookie(response, sid)
    response.headers["Cache-Control"] = "no-store"
    return response  # its CSP (scripts by nonce: csp_nonce in the template) is callbacks/web/headers.py's


def shopping_session() -> tuple[str, bool, dict | None]:
    """For the pages that sell: a paid session's cart is gone, so a new session starts."""
    sid, fresh = shopper_session()
    state = None if fresh else kco().store.get_state(sid)
    if paid(state):
        return new_session(), True, None
    return sid, fresh, state


@bp.get("/")
def products():
    sid, fresh, state = shopping_session()
    return page("shop/products.html", sid, fresh, state, title=lazy_gettext("Products"))


@bp.get("/cart")
def cart():
    sid, fresh, state = shopping_session()
    return page("shop/cart.html", sid, fresh, state, title=lazy_gettext("Cart"))


@bp.get("/checkout")
def checkout():
    sid, fresh = shopper_session()
    asked = request.args.get("session")
    if asked and asked != sid:  # Klarna's "back to checkout" link names a session
        abort(403, "This checkout belongs to another browser.")
    state = None if fresh else kco().store.get_state(sid)
    if paid(state):  # nothing left to buy: the shopper sees what they paid
        return redirect(url_for("demoshop.confirmation", order_id=state["klarna"]["order_id"]), 303)
    return page("shop/checkout.html", sid, fresh, state, title=lazy_gettext("Checkout"))


@bp.post("/shop-again")
def shop_again():
    """A new purchase needs a new session: a fresh cookie, an empty cart."""
    response = redirect(url_for("demoshop.products"), 303)
    set_cookie(response, new_session())
    return response


@bp.get("/confirmation")
def confirmation():
    """After the purchase Klarna sends the shopper here with `session` and `order_id`. The URL
    may leak, so the session is the one the cookie was signed for, never the URL's."""
    sid = cookie_session()
    asked, order_id = request.args.get("session"), request.args.get("order_id", "")
    if sid is None or (asked and asked != sid):
        abort(403, "This confirmation belongs to another browser.")
    state = kco().store.get_state(sid)
    if state is None or state["klarna"].get("order_id") != order_id:
        abort(404, "No such order in this session.")
    snippet, status = None, None
    try:
        lifecycle = kco().lifecycle  # at the account holding the session's order
        order = lifecycle.client_for(state["klarna"].get("account")).read_order(order_id)
        snippet, status = order.get("html_snippet"), order.get("status")
    except KlarnaError as exc:  # the page still shows our own record of the order
        current_app.logger.warning("confirmation: reading order %s failed: %s", order_id, exc)
    return page("shop/confirmation.html", sid, False, state, title=lazy_gettext("Thank you"),
                config={"order_id": order_id, "confirmation_snippet": snippet,
                        "klarna_status": status})


@bp.get("/terms")
def terms():
    return page("shop/terms.html", *shopper_session(), title=lazy_gettext("Terms"))
