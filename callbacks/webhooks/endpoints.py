"""Webhook endpoints and their deliveries, as the API, the CLI and the support console read and
change them. No Flask here.

An endpoint's secret is made here (Standard Webhooks' form: `whsec_` + base64 of 24 random
bytes), stored to sign with, and handed out once, in the reply that created it.
"""
from __future__ import annotations

import base64
import secrets
from datetime import datetime

import sqlalchemy as sa

from callbacks.store.database import Store, iso, utcnow
from callbacks.store.tables import webhook_attempts, webhook_endpoints, webhook_messages
from callbacks.webhooks.outbox import PENDING

MESSAGE_PREFIX = "msg_"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def message_name(message_id: int) -> str:
    """The message's `webhook-id`, the same on every attempt."""
    return f"{MESSAGE_PREFIX}{message_id}"


def message_number(name: str) -> int | None:
    digits = name.removeprefix(MESSAGE_PREFIX)
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 12 else None


def _types_column(event_types: list[str] | None) -> str | None:
    return f" {' '.join(sorted(set(event_types)))} " if event_types else None


def as_json(row, secret: bool = False) -> dict:
    out = {"id": row.id, "url": row.url,
           "event_types": row.event_types.split() if row.event_types else None,
           "description": row.description, "created_at": iso(row.created_at),
           "enabled": row.enabled, "disabled_reason": row.disabled_reason,
           "failing_since": iso(row.failing_since) if row.failing_since else None}
    if secret:
        out["secret"] = row.secret
    return out


def create(store: Store, url: str, event_types: list[str] | None = None,
           description: str | None = None) -> dict:
    row = {"id": "ep_" + secrets.token_hex(12), "url": url,
           "event_types": _types_column(event_types), "description": description,
           "secret": new_secret(), "created_at": utcnow(), "enabled": True}
    with store.write() as conn:
        conn.execute(webhook_endpoints.insert().values(row))
        created = conn.execute(sa.select(webhook_endpoints)
                               .where(webhook_endpoints.c.id == row["id"])).one()
    return as_json(created, secret=True)


def listed(store: Store) -> list[dict]:
    with store.reads.connect() as conn:
        rows = conn.execute(sa.select(webhook_endpoints)
                            .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)).all()
    return [as_json(r) for r in rows]


def get(store: Store, endpoint_id: str) -> dict | None:
    with store.reads.connect() as conn:
        row = conn.execute(sa.select(webhook_endpoints)
                           .where(webhook_endpoints.c.id == endpoint_id)).first()
    return as_json(row) if row else None


def remove(store: Store, endpoint_id: str) -> bool:
    """The endpoint, its queued messages and its attempts (SQLite keeps no foreign keys)."""
    with store.write() as conn:
        conn.execute(webhook_attempts.delete().where(webhook_attempts.c.endpoint_id == endpoint_id))
        conn.execute(webhook_messages.delete().where(webhook_messages.c.endpoint_id == endpoint_id))
        return conn.execute(webhook_endpoints.delete()
                            .where(webhook_endpoints.c.id == endpoint_id)).rowcount == 1


def _attempt_json(row) -> dict:
    return {"id": row.id, "message_id": message_name(row.message_id), "event_id": row.event_id,
            "event_type": row.type, "session": row.session, "attempt": row.attempt,
            "status": row.status, "error": row.error, "duration_ms": round(row.duration_ms, 1),
            "at": iso(row.at), "endpoint_id": row.endpoint_id}


ATTEMPTS = (sa.select(webhook_attempts, webhook_messages.c.event_id, webhook_messages.c.type,
                      webhook_messages.c.session)
            .join(webhook_messages, webhook_messages.c.id == webhook_attempts.c.message_id))


def deliveries(store: Store, endpoint_id: str, after: int = 0, limit: int = 100) -> list[dict]:
    """Every attempt to this endpoint with an id above `after`, oldest first."""
    query = (ATTEMPTS.where(webhook_attempts.c.endpoint_id == endpoint_id,
                            webhook_attempts.c.id > after)
             .order_by(webhook_attempts.c.id).limit(limit))
    with store.reads.connect() as conn:
        return [_attempt_json(r) for r in conn.execute(query).all()]


def session_deliveries(store: Store, sid: str, limit: int = 200) -> list[dict]:
    """The attempts for one session's messages, for the support console's timeline."""
    query = (ATTEMPTS.where(webhook_messages.c.session == sid)
             .order_by(webhook_attempts.c.id).limit(limit))
    with store.reads.connect() as conn:
        return [_attempt_json(r) for r in conn.execute(query).all()]


def session_messages(store: Store, sid: str) -> list[dict]:
    query = (sa.select(webhook_messages).where(webhook_messages.c.session == sid)
             .order_by(webhook_messages.c.id))
    with store.reads.connect() as conn:
        return [{"message_id": message_name(r.id), "endpoint_id": r.endpoint_id,
                 "event_id": r.event_id, "event_type": r.type, "state": r.state,
                 "attempts": r.attempts} for r in conn.execute(query).all()]


def resend(store: Store, endpoint_id: str | None, message_id: int,
           now: datetime | None = None) -> bool:
    """Queue the message again, due at once (the same webhook-id: a receiver that saw it
    deduplicates). False when no such message (of this endpoint, when one is named)."""
    condition = [webhook_messages.c.id == message_id]
    if endpoint_id is not None:
        condition.append(webhook_messages.c.endpoint_id == endpoint_id)
    with store.write() as conn:
        return conn.execute(webhook_messages.update().where(*condition).values(
            state=PENDING, next_at=now or utcnow(), claim=None, claimed_until=None,
            attempts=0)).rowcount == 1
