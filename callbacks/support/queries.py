"""What the console reads: recent sessions, a search, and one session's merged timeline.

Read-only, and bounded: every list has a limit, so a session hammered by a fuzzer still
renders. Everything shown was scrubbed when it was recorded (callback log, activity) or never
held personal data (events: the schemas do not load names, e-mails or addresses).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from callbacks.klarna.scrub import readable
from callbacks.store.activity import activity
from callbacks.store.database import callback_log, events, klarna_orders, sessions

LIMIT = 50
TIMELINE_LIMIT = 1000
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


@dataclass
class SessionRow:
    sid: str
    updated_at: datetime
    country: str | None
    currency: str | None
    order_amount: int | None
    order_tax_amount: int | None
    order_id: str | None
    status: str | None
    validation: str | None
    merchant_reference1: str | None


@dataclass
class Step:
    at: datetime
    kind: str  # callback | storefront | klarna_api | event
    name: str
    status: int | None
    duration_ms: float | None
    detail: dict[str, Any]
    log_id: int | None = None


def _row(r) -> SessionRow:
    state = r.state or {}
    market, order, klarna = state.get("market") or {}, state.get("order") or {}, state.get("klarna") or {}
    return SessionRow(r.sid, r.updated_at, market.get("country"), market.get("currency"),
                      order.get("order_amount"), order.get("order_tax_amount"),
                      klarna.get("order_id") or r.klarna_order_id, klarna.get("status"),
                      (state.get("validation") or {}).get("result"),
                      state.get("merchant_reference1"))


def recent(store, query: str = "") -> tuple[list[SessionRow], str | None]:
    """Sessions, newest first; `query` is a session id, a Klarna order id or a date
    (YYYY-MM-DD, UTC). Returns the rows and, for a query that cannot be a date, None."""
    select = sa.select(sessions).order_by(sessions.c.updated_at.desc()).limit(LIMIT)
    query = query.strip()
    problem = None
    if DATE.match(query):
        try:
            day = datetime.strptime(query, "%Y-%m-%d")
        except ValueError:
            return [], f"{query} is not a date."
        select = select.where(sessions.c.updated_at >= day,
                              sessions.c.created_at < day + timedelta(days=1))
    elif query:
        owners = sa.select(klarna_orders.c.session).where(klarna_orders.c.order_id == query)
        select = select.where(sa.or_(sessions.c.sid == query,
                                     sessions.c.klarna_order_id == query,
                                     sessions.c.sid.in_(owners)))
    with store.engine.connect() as conn:
        rows = conn.execute(select).all()
    return [_row(r) for r in rows], problem


def one(store, sid: str) -> SessionRow | None:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(sessions).where(sessions.c.sid == sid)).first()
    return _row(row) if row else None


def timeline(store, sid: str) -> list[Step]:
    """Callbacks, storefront writes, Klarna API calls and events of one session, in the order
    they began (an event inside the request that caused it)."""
    with store.engine.connect() as conn:
        calls = conn.execute(sa.select(callback_log).where(callback_log.c.session == sid)
                             .order_by(callback_log.c.id).limit(TIMELINE_LIMIT)).all()
        acts = conn.execute(sa.select(activity).where(activity.c.session == sid)
                            .order_by(activity.c.id).limit(TIMELINE_LIMIT)).all()
        evs = conn.execute(sa.select(events).where(events.c.session == sid)
                           .order_by(events.c.id).limit(TIMELINE_LIMIT)).all()
    def began(at: datetime, ms: float | None) -> datetime:
        return at - timedelta(milliseconds=ms or 0)  # rows are written when the step ends

    steps = [Step(began(c.at, c.duration_ms), "callback", c.callback, c.status, c.duration_ms,
                  {"request": readable(c.request), "reply": c.reply, "order_id": c.order_id}, c.id)
             for c in calls]
    steps += [Step(began(a.at, a.duration_ms), a.kind, a.name, a.status, a.duration_ms, a.detail or {}) for a in acts]
    steps += [Step(e.at, "event", e.type, None, None, {"version": e.version, "data": e.data})
              for e in evs]
    return sorted(steps, key=lambda s: s.at)
