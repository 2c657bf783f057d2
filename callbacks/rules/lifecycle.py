"""What the Klarna order lifecycle does to a session, as pure functions (docs/design.md §7.1).

callbacks/klarna/lifecycle.py makes the Klarna calls and holds the lease; what a checkout load
does next, and what the session becomes after a create, update, read, push, acknowledge,
notification or market change, is decided here, from the session's state and what Klarna
answered. Like rules/checkout.py, nothing here touches the database, Flask or the network, and
no function changes a state it is given.

Two rules carry the most weight. A session whose order is complete is never sold again: a load
answers with the completed order (`CONFIRM`), and a Klarna order that reads anything but
`checkout_incomplete` is checked through Order Management before a new one is made
(`VERIFY_COMPLETION`). And when a session does move to a new Klarna order, nothing that belongs
to the old order's payment (`fraud_status`, `acknowledged`) comes along: a back end that ships
on those flags must never see them on an order nobody paid.
"""
from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from callbacks.rules import checkout, ksa, options
from callbacks.rules.checkout import COMPLETE, Decision, OrderComplete, changed, is_complete
from callbacks.rules.shop import Shop
from callbacks.rules.state import EventType

INCOMPLETE = "checkout_incomplete"
FRAUD_EVENTS = {"FRAUD_RISK_ACCEPTED": "ACCEPTED", "FRAUD_RISK_REJECTED": "REJECTED",
                "FRAUD_RISK_STOPPED": "REJECTED"}
# Keys of state["klarna"] that describe the session rather than one Klarna order, and so stay
# when the session moves to a new order. Everything else (the payment fields above all) starts
# again with the new order.
SESSION_FIELDS: tuple[str, ...] = ()
# The `reason` of an order_recreated when the session's market sells through another Klarna
# account than the one holding its order: the order cannot move, so a new one is made there.
KLARNA_ACCOUNT = "klarna_account"


class Step(StrEnum):
    """What a checkout load does next."""

    CONFIRM = "confirm"                      # the session's order is complete: show it, sell nothing
    CREATE = "create"                        # no order yet
    RECREATE = "recreate"                    # the order could not be read (404, 4xx, 5xx, network)
    VERIFY_COMPLETION = "verify_completion"  # Klarna's order is no longer incomplete: paid?
    MOVE = "move"                            # the market sells through another Klarna account
    KEEP = "keep"                            # Klarna already holds this cart
    UPDATE = "update"                        # Klarna holds another cart: send ours


def load_step(state: Mapping[str, Any], order: Mapping[str, Any] | None, in_step: bool,
              moved: bool = False) -> Step:
    """`order` is Klarna's read of the session's order (None: there is none, or the read
    failed) at the account holding it; `in_step` says whether it already holds the cart the
    session would send; `moved` whether the session's market sells through another account
    (account_moved). A moved session's order is still read first, at its own account: one that
    is no longer incomplete may have been paid, and is verified before anything is sold again."""
    if is_complete(state):
        return Step.CONFIRM
    if not state["klarna"]["order_id"]:
        return Step.CREATE
    if order is not None and klarna_status(order) != INCOMPLETE:
        return Step.VERIFY_COMPLETION
    if moved:
        return Step.MOVE
    if order is None:
        return Step.RECREATE
    return Step.KEEP if in_step else Step.UPDATE


def order_account(state: Mapping[str, Any]) -> str | None:
    """The Klarna account holding the session's order (None: the environment's account, also
    for every session recorded before accounts existed)."""
    account: str | None = state["klarna"].get("account")
    return account


def account_moved(shop: Shop, state: Mapping[str, Any]) -> bool:
    """The session has a Klarna order, and its market sells through another account than the
    one holding it (a market change, a country change inside the iframe, or a shop file that
    moved the market). A Klarna order cannot change account: the session needs a new order
    there, and the old one is abandoned (left to expire at its account)."""
    return (bool(state["klarna"]["order_id"])
            and shop.account_of(state["market"]["country"]) != order_account(state))


# The fields of Klarna's `address` object (docs/klarna.md §4.4) that an order moved to another
# account takes over from the old one; `organization_name` only where the new market sells to
# businesses. Nothing else of Klarna's copy is read, and none of it is ever stored.
ADDRESS_FIELDS = ("given_name", "family_name", "email", "title", "street_address",
                  "street_address2", "street_name", "street_number", "house_extension",
                  "postal_code", "city", "region", "phone", "country", "care_of", "attention")


def carried_addresses(shop: Shop, old_order: Mapping[str, Any] | None,
                      purchase_country: str) -> dict[str, dict[str, str]]:
    """The addresses a new order at another Klarna account is created with, so the shopper who
    moved there (the billing country changed inside the iframe) does not type them again: the
    old order's `billing_address` when it is in the new purchase country, and its
    `shipping_address` beside it when the new market lets it differ (or it is the same) and it
    is in one of the shop's countries. An order can carry addresses on create (Klarna's order
    schema; docs/klarna.md §6); a billing address elsewhere — the storefront moved the market,
    not the shopper's address — is not the new market's, and nothing is carried. `{}` when the
    old order could not be read or holds no address. Pure: what it returns goes into the
    create's body only, never into the state, the events or a log."""
    market = shop.market(purchase_country)
    if not isinstance(old_order, Mapping) or market is None:
        return {}
    fields = ADDRESS_FIELDS + (("organization_name",) if options.allows_organization(market.options) else ())

    def clean(raw: Any) -> dict[str, str]:
        if not isinstance(raw, Mapping):
            return {}
        out = {k: raw[k] for k in fields if isinstance(raw.get(k), str) and raw[k].strip()}
        if "country" in out:
            out["country"] = out["country"].upper()
        return out

    billing = clean(old_order.get("billing_address"))
    if billing.get("country") != market.country:
        return {}
    carried = {"billing_address": billing}
    shipping = clean(old_order.get("shipping_address"))
    if shipping.get("country") in shop.markets and (
            shipping == billing or options.separate_shipping_address(market.options, market.country)):
        carried["shipping_address"] = shipping
    return carried


def sync_needed(state: Mapping[str, Any]) -> bool:
    """After a cart or market write: is there an open Klarna order to bring in step? Never
    for a complete session (nothing may change what was paid), nor for an empty cart (Klarna
    needs lines; the next checkout load refuses it)."""
    klarna = state["klarna"]
    return bool(klarna["order_id"]) and klarna.get("status") == INCOMPLETE and bool(state["cart"]["items"])


def klarna_status(order: Mapping[str, Any]) -> str:
    return (order.get("status") or INCOMPLETE).lower()


def order_recorded(state: Mapping[str, Any], order: Mapping[str, Any], outcome: EventType | None,
                   data: Mapping[str, Any], version: int | None,
                   account: str | None = None) -> Decision | None:
    """The session after Klarna answered a create, update or read with `order`. `version` (with
    an outcome) is the state version whose cart Klarna received; `account` is the Klarna
    account that answered (None: the environment's, which is not written into the state, so
    that a session of a shop without accounts looks as it always did); a completion recorded
    meanwhile for this order is never moved back; a new order id starts a new `klarna` record."""
    known = state["klarna"]
    same_order = known.get("order_id") == order["order_id"]
    status = klarna_status(order)
    if same_order and known.get("status") == COMPLETE:
        status = COMPLETE  # a push recorded completion meanwhile
    carried = known if same_order else {k: known[k] for k in SESSION_FIELDS if k in known}
    klarna = {k: v for k, v in carried.items() if k != "account"}
    klarna.update(order_id=order["order_id"], status=status)
    if account is not None:
        klarna["account"] = account
    if outcome:
        if version is None:
            raise ValueError("an order_created/updated/recreated names the version sent")
        new = {**state, "klarna": {**klarna, "synced_version": version}}
        return Decision(new, outcome, {**data, "order_amount": order.get("order_amount"),
                                       "purchase_currency": order.get("purchase_currency")})
    new = {**state, "klarna": klarna}
    if changed(state, new):
        return Decision(new, EventType.ORDER_UPDATED, {"order_id": order["order_id"], "status": status})
    return None


def order_completed(shop: Shop, state: Mapping[str, Any] | None, sid: str, order_id: str,
                    om: Mapping[str, Any], account: str | None = None) -> Decision:
    """Order Management confirmed the purchase of `order_id` (a push, or a load that found the
    order complete) at Klarna account `account`. Call it only for the first recording of the
    order (Store's record_completed decides that); the order starts unacknowledged.

    The event also says who bought — `customer.type`, "person" or "organization" (Klarna's
    B2B flow), and nothing else of the customer — and, where Klarna's Shipping Assistant
    priced the shipping, the option its selector sold (`selected_shipping_option` with the
    TMS's `tms_reference` and the delivery details, none of the shopper's data; ksa.py)."""
    base = state if state is not None else checkout.new_state(shop, sid)
    reference = om.get("merchant_reference1") or base.get("merchant_reference1")
    klarna = {k: v for k, v in base["klarna"].items() if k != "account"}
    klarna.update(order_id=order_id, status=COMPLETE, fraud_status=om.get("fraud_status"),
                  acknowledged=False)
    if account is not None:
        klarna["account"] = account
    new = {**base, "merchant_reference1": reference, "klarna": klarna}
    data = {"order_id": order_id, "order_amount": om.get("order_amount"),
            "purchase_currency": om.get("purchase_currency"),
            "fraud_status": om.get("fraud_status"), "merchant_reference1": reference}
    customer_type = ksa.customer_type(om)
    if customer_type:
        data["customer"] = {"type": customer_type}
    option = ksa.completed_option(om)
    if option is not None and (ksa.applies(shop, base) or option.get("tms_reference")):
        data["selected_shipping_option"] = option
    return Decision(new, EventType.ORDER_COMPLETED, data)


def order_acknowledged(state: Mapping[str, Any], order_id: str) -> Decision:
    """Klarna took our acknowledge of `order_id` (recorded once: Store's mark_acknowledged)."""
    return Decision({**state, "klarna": {**state["klarna"], "acknowledged": True}},
                    EventType.ORDER_ACKNOWLEDGED, {"order_id": order_id})


def fraud_status_read(shop: Shop, state: Mapping[str, Any] | None, sid: str, order_id: str,
                      event_type: str, fraud_status: str | None) -> Decision | None:
    """A notification's `event_type`, checked against the fraud_status Order Management
    reports for `order_id`: the session takes Order Management's word; `verified` says
    whether the notification agreed. None when the fraud status did not change."""
    base = state if state is not None else checkout.new_state(shop, sid)
    old = base["klarna"].get("fraud_status")
    if old == fraud_status:
        return None
    new = {**base, "klarna": {**base["klarna"], "order_id": order_id, "fraud_status": fraud_status}}
    return Decision(new, EventType.FRAUD_STATUS_CHANGED, notification_data(
        order_id, event_type, fraud_status) | {"old": old})


def notification_data(order_id: str, event_type: str, fraud_status: str | None) -> dict[str, Any]:
    return {"order_id": order_id, "event_type": event_type, "fraud_status": fraud_status,
            "verified": FRAUD_EVENTS[event_type] == fraud_status}


def market_changed(shop: Shop, state: Mapping[str, Any], sid: str, country: str,
                   locale: str | None) -> Decision:
    """PUT …/market: the purchase country itself changes (a callback cannot do that). The
    order is re-priced in the new market; raises OrderComplete once paid, PricingError when
    the cart has an item the market does not sell."""
    if is_complete(state):
        raise OrderComplete(sid)
    market = shop.market(country)
    if market is None:
        raise ValueError(f"{country} is not one of the shop's markets")
    base = {**state, "purchase_country": market.country}
    new = checkout.reprice(shop, checkout.switch_market(shop, base, country, locale or state["market"]["locale"]))
    return Decision(new, EventType.MARKET_CHANGED if changed(state, new) else None,
                    {"market": {"old": state["market"], "new": new["market"]},
                     "purchase_country": {"old": state["purchase_country"], "new": market.country}})
