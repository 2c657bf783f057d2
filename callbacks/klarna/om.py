"""Order Management after purchase: capture, refund, cancel, extend and release the
authorization, update merchant_reference1 (docs/klarna.md §7, docs/orders.md). Functions that
take the client of the account holding the order, so that accounts per market only change
which client is passed; the calls go through KlarnaClient's one plumbing (retries, errors,
metrics).

Every call here changes money or the order, so every one carries a `Klarna-Idempotency-Key`:
Klarna runs a key once and answers a repeat with the first result, for 24 hours. The caller
passes the key, made by callbacks/klarna/idempotency.py (a UUIDv5 over a fixed namespace and a
stable name: the operation, the order, the caller's own Idempotency-Key), so a caller's retry
is one action at Klarna however often it arrives.
"""
from __future__ import annotations

from collections.abc import Mapping

from callbacks.klarna.client import KlarnaClient

OM = "/ordermanagement/v1/orders/"


def _post(client: KlarnaClient, operation: str, order_id: str, suffix: str, key: str,
          body: Mapping | None = None, method: str = "POST"):
    return client._call(operation, method, client._url(OM, order_id, suffix),
                        json_body=dict(body) if body is not None else None,
                        idempotency_key=key, expect=(200, 201, 204))


def _created_id(resp, header: str) -> str | None:
    """Klarna names the new capture or refund in a header (and in the Location's last part)."""
    named = resp.headers.get(header)
    if named:
        return named
    location = resp.headers.get("Location") or ""
    return location.rstrip("/").rsplit("/", 1)[-1] or None


def capture(client: KlarnaClient, order_id: str, body: Mapping, key: str) -> str | None:
    """POST …/captures → 201; returns the capture_id. 403 CAPTURE_NOT_ALLOWED past the
    remaining authorized amount, or on a cancelled or expired order."""
    return _created_id(_post(client, "capture_order", order_id, "/captures", key, body), "Capture-Id")


def refund(client: KlarnaClient, order_id: str, body: Mapping, key: str) -> str | None:
    """POST …/refunds → 201; returns the refund_id. 403 REFUND_NOT_ALLOWED past the captured amount."""
    return _created_id(_post(client, "refund_order", order_id, "/refunds", key, body), "Refund-Id")


def cancel(client: KlarnaClient, order_id: str, key: str) -> None:
    """POST …/cancel → 204. 403 CANCEL_NOT_ALLOWED once anything was captured."""
    _post(client, "cancel_order", order_id, "/cancel", key)


def extend_authorization_time(client: KlarnaClient, order_id: str, key: str) -> None:
    """POST …/extend-authorization-time → 204: the expiry moves to now + the account's days."""
    _post(client, "extend_authorization_time", order_id, "/extend-authorization-time", key)


def release_remaining_authorization(client: KlarnaClient, order_id: str, key: str) -> None:
    """POST …/release-remaining-authorization → 204. 403 NOT_ALLOWED when fully captured."""
    _post(client, "release_remaining_authorization", order_id,
          "/release-remaining-authorization", key)


def update_merchant_references(client: KlarnaClient, order_id: str, body: Mapping, key: str) -> None:
    """PATCH …/merchant-references → 204."""
    _post(client, "update_merchant_references", order_id, "/merchant-references", key, body,
          method="PATCH")
