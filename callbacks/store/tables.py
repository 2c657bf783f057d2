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
    sa.Column("klarna_account", sa.String(64)),  # the account holding it; NULL: the environment's
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
    sa.Column("klarna_account", sa.String(64)),  # NULL: the environment's account
)

# Extra merchant data (docs/design.md §7.5): the body Klarna gets as the order's `attachment`,
# one per session. Apart from the state so it never reaches the events, the feeds or a log.
session_attachments = sa.Table(
    "session_attachments", metadata,
    sa.Column("sid", sa.String(128), primary_key=True),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

checkout_locks = sa.Table(
    "checkout_locks", metadata,
    sa.Column("sid", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

# -- webhooks (callbacks/webhooks/): endpoints, the outbox, and every delivery attempt --------
webhook_endpoints = sa.Table(
    "webhook_endpoints", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_types", sa.Text),  # " a b " (each type space-delimited); NULL: every type
    sa.Column("description", sa.Text),
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("failing_since", sa.DateTime),
)

webhook_messages = sa.Table(
    "webhook_messages", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.String(40),
              sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_id", sa.Integer, nullable=False),
    sa.Column("session", sa.String(128), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.DateTime, nullable=False),
    sa.Column("claim", sa.String(32)),
    sa.Column("claimed_until", sa.DateTime),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("delivered_at", sa.DateTime),
    sa.Index("ix_webhook_messages_due", "state", "next_at"),
    sa.Index("ix_webhook_messages_order", "endpoint_id", "session", "event_id"),
    sqlite_autoincrement=True,
)

webhook_attempts = sa.Table(
    "webhook_attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.Integer,
              sa.ForeignKey("webhook_messages.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("endpoint_id", sa.String(40), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),
    sqlite_autoincrement=True,
)
