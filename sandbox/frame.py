"""The checkout iframe the sandbox's `html_snippet` embeds: the page a shopper clicks through.

It is a stand-in for Klarna's own iframe, so a merchant page can be exercised in a real
browser with no Klarna account: address forms, the shipping options, the order lines and
totals, a buy button. Every action goes through the shopper flow (shopper.py) — the same
callbacks, the same judging of replies as the `/_sandbox/orders/{id}/…` controls — so what a
person clicks here is exactly what a test drives there. The page tells its parent what happened
with Klarna's client-side events (docs/klarna.md §9; the parent side is in snippet.py and
static/klarna-checkout.js, the iframe side in static/frame.js).

    GET  /sandbox/checkout/{id}/frame            the checkout page (HTML)
    GET  /sandbox/checkout/{id}/confirmation     the "thank you" page of a completed order
    GET  /sandbox/checkout/{id}/order            what the page shows, as JSON (reloaded on resume)
    POST /sandbox/checkout/{id}/address          {"billing_address", "shipping_address"?}
    POST /sandbox/checkout/{id}/shipping_option  {"id"}
    POST /sandbox/checkout/{id}/purchase         {"displayed"?: {"order_amount", "purchase_currency"}}
    POST /sandbox/checkout/{id}/suspend          {"auto_resume"?} · POST …/resume

No auth, like Klarna's iframe: whoever has the order id is the shopper. Errors use Klarna's
error shape; the HTML pages answer an unknown order with a small 404 page.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import pycountry
from flask import Blueprint, jsonify, render_template, request

from sandbox.api import base_url, sandbox
from sandbox.orders import ApiError, Order, bad_value
from sandbox.shopper import current_option, customer_types, sample_person, separate_shipping_allowed
from sandbox.texts import country_name, language, texts

frame = Blueprint("sandbox_frame", __name__, template_folder="templates",
                  static_folder="static", static_url_path="/sandbox/static")
PREFIX = "/sandbox/checkout/<order_id>"
LINE_FIELDS = ("type", "reference", "name", "quantity", "quantity_unit", "unit_price", "tax_rate",
               "total_amount", "total_discount_amount", "total_tax_amount")
REGION_REQUIRED = ("US",)   # Klarna's US addresses carry the state in `region`


@lru_cache(maxsize=512)
def country(code: str, locale: str | None = None) -> dict:
    """A select option, named in the order's language; `alpha3` in lower case is how the
    client-side events name a country."""
    known = pycountry.countries.get(alpha_2=code)
    return {"code": code, "alpha3": known.alpha_3.lower() if known else code.lower(),
            "name": country_name(known.name, locale) if known else code}


@lru_cache(maxsize=8)
def regions(code: str) -> list[dict]:
    """The state codes Klarna expects in `region` (the part after `US-`)."""
    found = pycountry.subdivisions.get(country_code=code) or []
    return sorted(({"code": s.code.split("-", 1)[1], "name": s.name} for s in found
                   if s.type == "State"), key=lambda r: r["name"])


def _allowed(values: Any, fallback: list[str]) -> list[str]:
    return [c.upper() for c in values] if isinstance(values, list) and values else fallback


def frame_state(order: Order, suspended: bool = False) -> dict:
    """What the iframe shows — the order as the shopper sees it, and nothing the page has no
    use for (merchant_urls, merchant_data, tags stay out)."""
    data = order.data
    purchase_country = data["purchase_country"].upper()
    shipping_countries = _allowed(data.get("shipping_countries"), [purchase_country])
    billing_countries = _allowed(data.get("billing_countries"), shipping_countries)
    billing = data.get("billing_address") or sample_person(purchase_country)
    options = data.get("options") or {}
    option = current_option(data, order.ksa)
    offered = (order.ksa or {}).get("offered") if order.ksa is not None else data.get("shipping_options")
    locale = data.get("locale") if isinstance(data.get("locale"), str) else None
    return {
        "order_id": order.order_id, "status": order.status, "suspended": suspended,
        "purchase_country": purchase_country, "purchase_currency": data.get("purchase_currency"),
        # Countries are read by name, in the order's language (the code stays in `data-value`).
        "purchase_country_name": country(purchase_country, locale)["name"],
        "billing_country_name": country(str(billing.get("country") or purchase_country).upper(), locale)["name"],
        "locale": data.get("locale"), "order_amount": data.get("order_amount"),
        # The iframe's own words in the order's language (sandbox/texts.py); the shop's words
        # (lines, shipping options) are the order's, as the merchant sent them.
        "language": language(locale), "texts": texts(locale),
        "order_tax_amount": data.get("order_tax_amount"),
        "order_lines": [{k: line.get(k) for k in LINE_FIELDS if line.get(k) is not None}
                        for line in data.get("order_lines") or [] if isinstance(line, Mapping)],
        "shipping_options": [o for o in offered or [] if isinstance(o, Mapping)],
        # Klarna's Shipping Assistant: "tms" (the sandbox's TMS table) or "fallback" (the
        # merchant's options, the TMS not answering); None when the merchant prices shipping.
        "shipping_assistant": (order.ksa or {}).get("source") if order.ksa is not None else None,
        "selected_shipping_option": option.get("id") if option else None,
        "prefilled": bool(data.get("billing_address")),
        "billing_address": billing,
        "shipping_address": data.get("shipping_address") or billing,
        "customer": data.get("customer") or {"type": customer_types(data)[0]},
        "customer_types": customer_types(data),
        "separate_shipping": separate_shipping_allowed(data),
        "billing_countries": [country(c, locale) for c in billing_countries],
        "shipping_countries": [country(c, locale) for c in shipping_countries],
        "regions": {c: regions(c) for c in REGION_REQUIRED
                    if c in billing_countries or c in shipping_countries},
        "require_client_validation": bool(options.get("require_client_validation")),
        "additional_checkboxes": [b for b in options.get("additional_checkboxes") or []
                                  if isinstance(b, Mapping) and b.get("id")],
        "terms_url": (data.get("merchant_urls") or {}).get("terms"),
    }


def _state(order_id: str) -> dict:
    box = sandbox()
    return frame_state(box.orders.read(order_id), box.shopper.is_suspended(order_id))


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise bad_value(["body"])
    return body


def _needs_region(address: Any, field: str) -> None:
    if (isinstance(address, Mapping) and str(address.get("country", "")).upper() in REGION_REQUIRED
            and not str(address.get("region") or "").strip()):
        raise bad_value([f"{field}.region"])


def _answer(order_id: str, result: Mapping):
    """The outcome the shopper sees, and the order as it is now."""
    reply = {k: result.get(k) for k in ("action", "callback", "outcome", "shopper_sees",
                                        "problems", "location", "redirect_to")}
    reply["order"] = _state(order_id)
    return jsonify(reply)


def _page(template: str, order_id: str, **context):
    try:
        order = sandbox().orders.read(order_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return render_template("sandbox/missing.html", order_id=order_id), 404
    state = frame_state(order, sandbox().shopper.is_suspended(order_id))
    return render_template(template, state=state, sandbox_url=base_url(), **context)


@frame.after_request
def _no_store(response):
    """The page reloads the order on every resume; a cached copy would show old totals."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@frame.get(PREFIX + "/frame")
def checkout_frame(order_id: str):
    return _page("sandbox/frame.html", order_id)


@frame.get(PREFIX + "/confirmation")
def confirmation_frame(order_id: str):
    return _page("sandbox/confirmation.html", order_id)


@frame.get(PREFIX + "/order")
def frame_order(order_id: str):
    return jsonify(_state(order_id))


@frame.post(PREFIX + "/address")
def frame_address(order_id: str):
    body = _body()
    billing, shipping = body.get("billing_address"), body.get("shipping_address")
    _needs_region(billing, "billing_address")
    _needs_region(shipping, "shipping_address")
    return _answer(order_id, sandbox().shopper.change_address(order_id, billing, shipping))


@frame.post(PREFIX + "/shipping_option")
def frame_shipping_option(order_id: str):
    return _answer(order_id, sandbox().shopper.select_shipping_option(order_id, _body().get("id")))


def _displayed(value: Any) -> dict | None:
    """What the page showed as Buy was pressed, as the frame reports it (recorded, not trusted:
    the order is charged as the sandbox holds it)."""
    if not isinstance(value, Mapping):
        return None
    amount, currency = value.get("order_amount"), value.get("purchase_currency")
    return {"order_amount": amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
            "purchase_currency": currency[:3] if isinstance(currency, str) else None}


def _buyer(body: Any, order_id: str) -> dict:
    """A business purchase (Klarna's B2B flow): the organisation's name on the billing
    address and a test registration number, as Klarna's iframe would collect them."""
    if not isinstance(body, Mapping) or body.get("customer_type") in (None, "person"):
        return {"customer": {"type": "person"}} if isinstance(body, Mapping) and body.get("customer_type") else {}
    if body.get("customer_type") != "organization":
        raise bad_value(["customer_type"])
    order = sandbox().orders.read(order_id)
    billing = dict(order.data.get("billing_address") or sample_person(order.data["purchase_country"]))
    name = body.get("organization_name")
    billing["organization_name"] = name.strip()[:255] if isinstance(name, str) and name.strip() else "Testbolaget AB"
    return {"customer": {"type": "organization", "organization_registration_id": "556036-0793"},
            "billing_address": billing}


@frame.post(PREFIX + "/purchase")
def frame_purchase(order_id: str):
    body = request.get_json(silent=True)
    displayed = _displayed(body.get("displayed")) if isinstance(body, dict) else None
    return _answer(order_id, sandbox().shopper.purchase(order_id, _buyer(body, order_id), displayed=displayed))


@frame.post(PREFIX + "/suspend")
def frame_suspend(order_id: str):
    body = request.get_json(silent=True)
    auto_resume = not (isinstance(body, dict) and body.get("auto_resume") is False)
    return jsonify(sandbox().shopper.suspend(order_id, auto_resume))


@frame.post(PREFIX + "/resume")
def frame_resume(order_id: str):
    sandbox().shopper.resume(order_id)
    return jsonify(_state(order_id))
