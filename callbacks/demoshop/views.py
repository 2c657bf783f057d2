"""The demo shop (issue 11): a product list with a market selector, a cart, a checkout page
around Klarna's snippet, the confirmation and the terms — the `merchant_urls` pages that
development points Klarna at, so the sandbox's redirect after a purchase lands on a real page.

The pages are the merchant's back end: they mint the shopper's session id (a random cookie) and
put that session's browser token in the page, never KCO_API_KEY. Everything else — the cart, the
market, the checkout load, following the feed — is static/kco-sync.js talking to /api with
that token, exactly as a merchant's own page would. The stable test hooks are in docs/browser.md.
"""
from __future__ import annotations

import secrets

from flask import Blueprint, abort, current_app, g, render_template, request
from flask_babel import force_locale, gettext, lazy_gettext

from callbacks.klarna.client import KlarnaError
from callbacks.rules.texts import N_, Text
from callbacks.web import i18n, schemas
from callbacks.web.browser import issue

COOKIE = "kco_shop_session"
bp = Blueprint("demoshop", __name__, template_folder="templates")


def kco():
    return current_app.extensions["kco"]


def shopper_session() -> tuple[str, bool]:
    """The shopper's session id from the cookie, or a new one (True: set the cookie)."""
    sid = request.cookies.get(COOKIE, "")
    if schemas.SESSION_ID.match(sid) and sid.startswith("shop-"):
        return sid, False
    return f"shop-{secrets.token_urlsafe(18)}", True


def catalogue() -> dict:
    """The shop file's products as the pages need them: names per language, prices per currency."""
    shop = kco().shop
    return {
        "products": [{"sku": p.sku, "name": p.name, "names": dict(p.names), "type": p.type,
                      "prices": dict(p.prices)} for p in shop.products.values()],
        "markets": [{"country": m.country, "currency": m.currency, "locales": list(m.locales)}
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
}


def script_texts() -> dict:
    out = {}
    for lang in i18n.LANGUAGES:
        with force_locale(lang):
            out[lang] = {key: gettext(msgid) for key, msgid in SCRIPT_TEXTS.items()}
    return out


def page(template: str, sid: str, fresh: bool, **context):
    """Rendered in the language of the shopper's market (its locale's language, English where
    no catalog is shipped), which is also the language Klarna's error_text uses."""
    state = kco().store.get_state(sid)
    locale = state["market"]["locale"] if state else kco().shop.default_market.default_locale
    g.kco_language = language = i18n.catalog_language(locale)
    if request.args.get("kco_error") == "cart_changed":  # validation's 303 back to the checkout
        context["notice"] = i18n.render(Text("cart_changed"), locale, kco().shop.texts)
    config = {"session": sid, **issue(sid), "catalogue": catalogue(), "texts": script_texts(),
              "language": language, **context.pop("config", {})}
    response = current_app.make_response(render_template(
        template, shop=kco().shop, config=config, lang=language, **context))
    if fresh:
        response.set_cookie(COOKIE, sid, max_age=48 * 3600, httponly=True, samesite="Lax")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def products():
    return page("shop/products.html", *shopper_session(), title=lazy_gettext("Products"))


@bp.get("/cart")
def cart():
    return page("shop/cart.html", *shopper_session(), title=lazy_gettext("Cart"))


@bp.get("/checkout")
def checkout():
    sid, fresh = shopper_session()
    asked = request.args.get("session")
    if asked and asked != sid:  # Klarna's "back to checkout" link names a session
        abort(403, "This checkout belongs to another browser.")
    return page("shop/checkout.html", sid, fresh, title=lazy_gettext("Checkout"))


@bp.get("/confirmation")
def confirmation():
    """After the purchase Klarna sends the shopper here with `session` and `order_id`. The URL
    may leak, so only the browser holding that session's cookie sees the order."""
    sid, fresh = shopper_session()
    asked, order_id = request.args.get("session"), request.args.get("order_id", "")
    if fresh or asked != sid:
        abort(403, "This confirmation belongs to another browser.")
    state = kco().store.get_state(sid)
    if state is None or state["klarna"].get("order_id") != order_id:
        abort(404, "No such order in this session.")
    snippet = None
    try:
        snippet = kco().lifecycle.client.read_order(order_id).get("html_snippet")
    except KlarnaError as exc:  # the page still shows our own record of the order
        current_app.logger.warning("confirmation: reading order %s failed: %s", order_id, exc)
    return page("shop/confirmation.html", sid, False, title=lazy_gettext("Thank you"),
                config={"order_id": order_id, "confirmation_snippet": snippet})


@bp.get("/terms")
def terms():
    return page("shop/terms.html", *shopper_session(), title=lazy_gettext("Terms"))
