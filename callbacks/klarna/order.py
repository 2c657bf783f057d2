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

from callbacks.rules.shop import Shop
from callbacks.web.tokens import callback_token

# Klarna's callbacks, in the order a checkout meets them: the synchronous four (Klarna waits
# for the reply) and the asynchronous two. Each is a view in callbacks/klarna/views.py.
SYNCHRONOUS = ("address_update", "shipping_option_update", "country_change", "validation")
ASYNCHRONOUS = ("push", "notification")  # they call Order Management: the URL names the account
CALLBACKS = SYNCHRONOUS + ASYNCHRONOUS
PLACEHOLDER = "{checkout.order.id}"
ACCOUNT_PARAMETER = "klarna_account"
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


def merchant_urls(urls: Urls, sid: str, account: str | None = None) -> dict:
    """`account`: the Klarna account the order is made at (None: the environment's, named in
    no URL, so an order of a shop without accounts gets the URLs it always did)."""
    token = callback_token(urls.secret, sid)
    query = f"session={quote(sid, safe='')}&order_id={PLACEHOLDER}"
    out = {name: f"{urls.public}/kco/{name}?{query}&token={token}" for name in CALLBACKS}
    if account is not None:
        for name in ASYNCHRONOUS:
            out[name] += f"&{ACCOUNT_PARAMETER}={quote(account, safe='')}"
    out.update(terms=urls.terms,
               checkout=_join(urls.checkout, query),
               confirmation=_join(urls.confirmation, query))
    return out


def order_payload(shop: Shop, state: Mapping, urls: Urls, account: str | None = None) -> dict:
    """The body of Create/Update Order for this state: the cart in the session's market, the
    purchase country Klarna must use, and where to call us back (`account`: the Klarna account
    the body goes to, named in the push and notification URLs)."""
    countries = sorted(shop.markets)
    payload = {
        "purchase_country": state["purchase_country"] if not state.get("pending_purchase_country")
        else state["pending_purchase_country"],
        "purchase_currency": state["market"]["currency"],
        "locale": state["market"]["locale"],
        **state["order"],
        "shipping_options": state["shipping_options"],
        "merchant_urls": merchant_urls(urls, state["session"], account),
        "merchant_reference2": state["session"],
        "merchant_data": json.dumps({"session": state["session"], "cart_version": state["version"]},
                                    separators=(",", ":")),
        "shipping_countries": countries,
        "billing_countries": countries,
        "options": {"require_validate_callback_success": True},
    }
    if state.get("merchant_reference1"):
        # The shop's order number: Klarna shows it on the confirmation and in its e-mails.
        payload["merchant_reference1"] = state["merchant_reference1"]
    return payload


def sent_version(payload: Mapping) -> int:
    """The state version whose cart this payload carries (its merchant_data says so)."""
    return json.loads(payload["merchant_data"])["cart_version"]


def differs(klarna_order: Mapping, payload: Mapping) -> list[str]:
    """What Klarna's copy lacks of ours; [] when an update would change nothing that matters."""
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
    return problems
