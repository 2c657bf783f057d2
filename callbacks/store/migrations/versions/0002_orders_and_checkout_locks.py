"""Completed Klarna orders (the push idempotency key) and checkout-load leases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "klarna_orders",
        sa.Column("order_id", sa.String(255), primary_key=True),
        sa.Column("session", sa.String(128), nullable=False, index=True),
        sa.Column("completed_at", sa.DateTime, nullable=False),
        sa.Column("acknowledged_at", sa.DateTime),
        sa.Column("fraud_status", sa.String(20)),
        sa.Column("order_amount", sa.BigInteger),
        sa.Column("purchase_currency", sa.String(3)),
    )
    op.create_table(
        "checkout_locks",
        sa.Column("sid", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkout_locks")
    op.drop_table("klarna_orders")
