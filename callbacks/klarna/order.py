"""The checkout order we send Klarna for a session (docs/design.md §6.1, §7.1), and whether Klarna's
copy still matches it.

Every callback URL carries the session id, Klarna's `{checkout.order.id}` placeholder and the
session's token, because Klarna's shipping-service bodies carry no order id and Klarna signs
nothing. The push and notification URLs of an order at a named Klarna account also carry the
account (`klarna_account=`): they make the Order Management calls, which must go to the
account that holds the order even after the session has moved on to another order elsewhere.
Pure: the caller passes the settings it needs.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from callbacks.rules import ksa, options
from callbacks.rules.shop import Shop
from callbacks.web.tokens import callback_token

# Klarna's callbacks, in the order a checkout meets them: the synchronous four (Klarna waits
# for the reply) and the asynchronous two. Each is a view in callbacks/klarna/views.py.
SYNCHRONOUS = ("address_update", "shipping_option_update", "country_change", "validation")
ASYNCHRONOUS = ("push", "notification")  # they call Order Management: the URL names the account
CALLBACKS = SYNCHRONOUS + ASYNCHRONOUS
PLACEHOLDER = "{checkout.order.id}"
ACCOUNT_PARAMETER = "klarna_account"
KSA_SKIPS = "shipping_option_update"
COMPARED = ("purchase_country", "purchase_currency", "locale", "order_amount", "order_tax_amount")
LINE_KEYS = ("type", "reference", "quantity", "unit_price", "tax_rate", "total_amount",
             "total_discount_amount", "total_tax_amount")


@dataclass(frozen=True)
class Urls:
    public: str
    terms: str
    checkout: str
    confirmation: str
    secret: str


def _join(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def merchant_urls(urls: Urls, sid: str, account: str | None = None, *,
                  shipping_assistant: bool = False) -> dict:
    """Every callback's URL. `account`: the Klarna account the order is made at (None: the
    environment's, named in no URL, so an order of a shop without accounts gets the URLs it
    always did). Without `shipping_option_update` where Klarna's Shipping Assistant prices the
    shipping (Klarna's guide: the merchant should not use it then)."""
    token = callback_token(urls.secret, sid)
    query = f"session={quote(sid, safe='')}&order_id={PLACEHOLDER}"
    names = [n for n in CALLBACKS if not (shipping_assistant and n == KSA_SKIPS)]
    out = {name: f"{urls.public}/kco/{name}?{query}&token={token}" for name in names}
    if account is not None:
        for name in ASYNCHRONOUS:
            out[name] += f"&{ACCOUNT_PARAMETER}={quote(account, safe='')}"
    out.update(terms=urls.terms,
               checkout=_join(urls.checkout, query),
               confirmation=_join(urls.confirmation, query))
    return out


def order_payload(shop: Shop, state: Mapping, urls: Urls, account: str | None = None, *,
                  attachment: Mapping[str, str] | None = None) -> dict:
    """The body of Create/Update Order for this state: the cart in the session's market, the
    purchase country Klarna must use, where to call us back (`account`: the Klarna account the
    body goes to, named in the push and notification URLs), the market's checkout options
    (docs/design.md §4.2), and the session's extra merchant data (`attachment`, §7.5) when the
    merchant's back end set one. Where Klarna's Shipping Assistant prices the shipping
    (§5.8) the state's order carries no shipping line, its options go as the fallback, no
    shipping_option_update URL is registered, and each goods line carries its product's
    shipping_attributes for the shop's transport management system."""
    countries = sorted(shop.markets)
    market = ksa.session_market(shop, state)
    assistant = bool(market and market.shipping_assistant)
    lines = state["order"]["order_lines"]
    if assistant:
        lines = [_with_attributes(shop, line) for line in lines]
    payload = {
        "purchase_country": state["purchase_country"] if not state.get("pending_purchase_country")
        else state["pending_purchase_country"],
        "purchase_currency": state["market"]["currency"],
        "locale": state["market"]["locale"],
        **state["order"],
        "order_lines": lines,
        "shipping_options": state["shipping_options"],
        "merchant_urls": merchant_urls(urls, state["session"], account, shipping_assistant=assistant),
        "merchant_reference2": state["session"],
        "merchant_data": json.dumps({"session": state["session"], "cart_version": state["version"]},
                                    separators=(",", ":")),
        "shipping_countries": countries,
        "billing_countries": countries,
        "options": options.order_options(market.options if market else {}),
    }
    if state.get("merchant_reference1"):
        # The shop's order number: Klarna shows it on the confirmation and in its e-mails.
        payload["merchant_reference1"] = state["merchant_reference1"]
    if attachment:
        payload["attachment"] = {"content_type": attachment["content_type"],
                                 "body": attachment["body"]}
    return payload


def _with_attributes(shop: Shop, line: Mapping) -> Mapping:
    """A goods line with its product's shipping_attributes, when the shop gives some."""
    if line.get("type") not in ("physical", None):
        return line
    attributes = ksa.line_attributes(shop.products.get(line.get("reference") or ""))
    return {**line, "shipping_attributes": attributes} if attributes else line


def klarna_prices_shipping(payload: Mapping) -> bool:
    """An order without a shipping_option_update URL: Klarna adds the shipping line itself
    (docs/klarna.md §0), so its copy of the order carries a line ours does not."""
    return "shipping_option_update" not in (payload.get("merchant_urls") or {})


def sent_version(payload: Mapping) -> int:
    """The state version whose cart this payload carries (its merchant_data says so)."""
    return json.loads(payload["merchant_data"])["cart_version"]


def differs(klarna_order: Mapping, payload: Mapping) -> list[str]:
    """What Klarna's copy lacks of ours; [] when an update would change nothing that matters.
    The shipping line Klarna adds itself to an order of ours without one (the Shipping
    Assistant's) is not a difference: it is taken out of Klarna's copy, totals included."""
    if klarna_prices_shipping(payload):
        klarna_order = ksa.without_klarna_shipping(klarna_order)
    problems = [key for key in COMPARED
                if str(klarna_order.get(key, "")).upper() != str(payload[key]).upper()]
    theirs = [{k: line.get(k, 0 if k != "type" else None) for k in LINE_KEYS}
              for line in klarna_order.get("order_lines") or []]
    ours = [{k: line.get(k, 0 if k != "type" else None) for k in LINE_KEYS}
            for line in payload["order_lines"]]
    if theirs != ours:
        problems.append("order_lines")
    if payload.get("merchant_reference1") and \
            klarna_order.get("merchant_reference1") != payload["merchant_reference1"]:
        problems.append("merchant_reference1")
    theirs_options = klarna_order.get("options")
    if isinstance(theirs_options, Mapping) and any(
            theirs_options.get(k) != v for k, v in payload["options"].items()):
        problems.append("options")  # the shop file's options changed since the order was made
    if payload.get("attachment") and klarna_order.get("attachment") != payload["attachment"]:
        problems.append("attachment")
    return problems
