"""Replay's preparation: the Klarna order a sample needs (`klarna_order` in samples/README.md).

A push or a notification is checked against Order Management, so it only earns its 200 when
Klarna knows the order, completed, with `merchant_reference2` naming the session. Against the
sandbox (KLARNA_API_URL, with this app's credentials) replay makes that order first: the
checkout order kco-sync itself would send for a one-item cart, created through the Checkout
API, then completed with the sample's fraud_status through the sandbox's `/_sandbox` control.
Real Klarna has no such control; there such a sample needs `--order-id` of a real order.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests

from callbacks.klarna.client import KlarnaError
from callbacks.klarna.order import order_payload
from callbacks.rules import checkout
from callbacks.rules.pricing import CartItem, PricingError

CONTROL_TIMEOUT = (3.05, 10.0)


class NotPrepared(Exception):
    """Why the order could not be made; the payload is reported as failed, not sent."""


def klarna_order(app: Any, session: str, wanted: Mapping, *, source: str = "KLARNA_API_URL") -> str:
    """Create and complete an order for `session` at the sandbox (the app's KLARNA_API_URL,
    found as `source` says); returns its order id."""
    kco = app.extensions["kco"]
    state = _state(kco.shop, session)
    account = kco.shop.account_of(state["market"]["country"])
    base = (app.config["KLARNA_API_URL"] if account is None
            else kco.lifecycle.accounts.get(account).api_url).rstrip("/")
    where = f"{base} ({source})"
    try:
        order = kco.lifecycle.client_for(account).create_order(
            order_payload(kco.shop, state, kco.lifecycle.urls, account))
    except KlarnaError as exc:
        if exc.is_network_error:
            errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", " ".join(exc.error_messages))
            raise NotPrepared(f"could not create the order it needs at {where}: no answer"
                              f"{' (' + errno.group(1).strip() + ')' if errno else ''}; is the sandbox "
                              "running there? ./scripts/run.sh starts it (replay then finds it), or "
                              "pass --sandbox-url") from None
        raise NotPrepared(f"could not create the order it needs at {where}: {exc}") from None
    try:
        resp = requests.post(f"{base}/_sandbox/orders/{order['order_id']}/complete",
                             json={"fraud_status": wanted["fraud_status"]}, timeout=CONTROL_TIMEOUT)
    except requests.RequestException as exc:
        raise NotPrepared(f"could not complete the order it needs at {where}: "
                          f"{type(exc).__name__}") from None
    if resp.status_code != 200:
        raise NotPrepared(f"{where} completed no order ({resp.status_code}): it is not the sandbox; "
                          "pass --order-id of a completed order whose merchant_reference2 is "
                          "the --session")
    return order["order_id"]


def _state(shop: Any, session: str) -> dict:
    """The session's state with the first product the default market can price in its cart."""
    for reference in sorted(shop.products):
        try:
            return checkout.new_state(shop, session, items=[CartItem(reference, 1)])
        except PricingError:
            continue
    raise NotPrepared("the shop has no product its default market can price")
