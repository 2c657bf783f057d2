"""`Klarna-Idempotency-Key` values: UUIDv5 over a namespace fixed in this file and a stable name
of the logical call (docs/klarna.md §7.1).

Klarna runs a POST or PATCH carrying a key it has seen in the last 24 hours once, and answers a
repeat with the first result; it asks for UUIDv5 keys. A key must therefore be the same for
every attempt of one logical call — a urllib3 retry, a second checkout load after a crash, the
same call from another gunicorn worker or host — and differ between two calls that must both
happen. So a key is never random: it is derived from what identifies the call (the operation,
the Klarna order, the session, the state version whose cart is sent, the caller's own key), and
from nothing that varies between attempts (time, process, thread).

Pure: no Flask, no network. Changing NAMESPACE or the name layout changes every key, so a
retry spanning a deploy would run twice: both are fixed forever.
"""
from __future__ import annotations

import uuid

# kco-sync's namespace (a random UUID drawn once). The Order Management keys made before this
# module existed used the same namespace and the same "operation\npart\npart" layout, so they
# are unchanged.
NAMESPACE = uuid.UUID("5b0f2c1e-7d1a-5c3e-9a53-6b636f2d7379")
SEPARATOR = "\n"


def key(operation: str, *parts: str | int | None) -> str:
    """The key of `operation` on `parts`, e.g. key("capture_order", order_id, caller_key).

    `None` stands for "none" (a session's first order replaces no order), written as an empty
    part. A part may not contain the separator: then two different calls could share a name,
    and Klarna would answer the second with the first one's result. Every part kco-sync passes
    already excludes it (session ids, Klarna order ids without control characters, HTTP header
    values, account names, integers)."""
    names = [operation, *("" if p is None else str(p) for p in parts)]
    for name in names:
        if SEPARATOR in name:
            raise ValueError(f"an idempotency key part may not contain a line break: {name!r}")
    return str(uuid.uuid5(NAMESPACE, SEPARATOR.join(names)))


# -- the calls kco-sync keys ---------------------------------------------------------------------
def create_order(sid: str, version: int, replaces: str | None, account: str | None,
                 deployment: str, variant: str | None = None) -> str:
    """Checkout's create for the session's cart at `version`, replacing order `replaces` (None:
    the session's first order), at Klarna account `account` (None: the environment's), by the
    deployment whose public URL is `deployment`. A load that created the order but died before
    recording it is answered with that same order when it is retried, instead of leaving an
    orphan behind; session ids are the storefront's, so two deployments sharing one Klarna
    account (a staging and a live shop on one playground id) may both have an "s-1".
    `variant` names a second body for the same create after Klarna refused the first (the
    move's create without the carried address): Klarna answers a repeated key with the first
    result, refusal included. Without one the key is what it always was."""
    return key("create_order", deployment, sid, version, replaces, account,
               *((variant,) if variant else ()))


def update_order(sid: str, order_id: str, version: int) -> str:
    """Checkout's update of `order_id` with the session's cart at `version`."""
    return key("update_order", order_id, sid, version)


def acknowledge_order(order_id: str) -> str:
    """Order Management's acknowledge: once per order, however many pushes arrive."""
    return key("acknowledge_order", order_id)


def order_management(operation: str, order_id: str, caller_key: str) -> str:
    """An Order Management action asked through the orders API (capture, refund, …), keyed by
    the caller's own Idempotency-Key: a caller's retry is one action at Klarna."""
    return key(operation, order_id, caller_key)
