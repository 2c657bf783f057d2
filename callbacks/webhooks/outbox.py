"""The transactional outbox: a session transaction's events become webhook messages in the SAME
transaction, one row per (event, enabled endpoint subscribed to its type).

One INSERT … SELECT, built here (and compiled once, by callbacks/store/hotpath.py) and run by
the store at the end of every session transaction that recorded events (callbacks/store/
database.py on SQLite, inside events_pg.publish's single
message on PostgreSQL, where the event ids exist only once kco_append_events drew them). It
reads the endpoints in that transaction, so an endpoint created before the commit gets the
event and one deleted before it does not; without endpoints it inserts nothing. The session's
events are named by (session, version range): versions are drawn under the session lock, so the
range is exactly this transaction's events.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from callbacks.store.tables import events, webhook_endpoints, webhook_messages

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def _subscribed():
    """The endpoint takes every type (NULL) or lists this one in its " a b " string."""
    return sa.or_(webhook_endpoints.c.event_types.is_(None),
                  webhook_endpoints.c.event_types.like(sa.literal("% ") + events.c.type
                                                       + sa.literal(" %")))


def enqueue(sid: Any, first_version: Any, last_version: Any) -> sa.Insert:
    """The INSERT that queues the messages of session `sid`'s events first..last_version (values
    or SQL expressions: store/hotpath.py compiles it once, with placeholders for the three)."""
    select = (sa.select(webhook_endpoints.c.id, events.c.id, events.c.session, events.c.type,
                        sa.literal(PENDING), sa.literal(0), events.c.at, events.c.at)
              .select_from(events.join(webhook_endpoints,
                                       sa.and_(webhook_endpoints.c.enabled, _subscribed())))
              .where(events.c.session == sid, events.c.version >= first_version,
                     events.c.version <= last_version)
              .order_by(events.c.id, webhook_endpoints.c.id))
    return webhook_messages.insert().from_select(
        ["endpoint_id", "event_id", "session", "type", "state", "attempts", "next_at",
         "created_at"], select)
