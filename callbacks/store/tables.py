"""The tables (docs/design.md §8), kept apart from the Store so the schema reads in one place.

The Alembic migrations repeat these definitions on purpose: a migration is a frozen snapshot of
the schema at its revision, and must not change when this file does.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("sid", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("klarna_order_id", sa.String(255), index=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session", sa.String(128), nullable=False, index=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("horizon", sa.BigInteger),  # PostgreSQL: see store/events_pg.py
    sqlite_autoincrement=True,
)

callback_log = sa.Table(
    "callback_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("callback", sa.String(40), nullable=False),
    sa.Column("session", sa.String(128)),
    sa.Column("order_id", sa.String(255)),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("request", sa.JSON),
    sa.Column("reply", sa.JSON),
    sqlite_autoincrement=True,
)

klarna_orders = sa.Table(
    "klarna_orders", metadata,
    sa.Column("order_id", sa.String(255), primary_key=True),
    sa.Column("session", sa.String(128), nullable=False, index=True),
    sa.Column("completed_at", sa.DateTime, nullable=False),
    sa.Column("acknowledged_at", sa.DateTime),
    sa.Column("fraud_status", sa.String(20)),
    sa.Column("order_amount", sa.BigInteger),
    sa.Column("purchase_currency", sa.String(3)),
)

checkout_locks = sa.Table(
    "checkout_locks", metadata,
    sa.Column("sid", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)
