"""Klarna accounts: which account holds a session's order and a completed order.

A shop file may sell through several Klarna accounts (docs/design.md §4.1); every Checkout and
Order Management call for an order must go to the account that created it. The session's order
is in `sessions.klarna_account` (beside `klarna_order_id`, mirrored from the state's
`klarna.account` on every save), a completed order's in `klarna_orders.klarna_account`, so that
captures, refunds and the reconciliation's acknowledges find it long after the session moved.
NULL is the environment's account (KLARNA_API_URL, …): every row written before this revision
was made there, so no backfill is needed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-14
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("klarna_account", sa.String(64)))
    with op.batch_alter_table("klarna_orders") as batch:
        batch.add_column(sa.Column("klarna_account", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("klarna_orders") as batch:
        batch.drop_column("klarna_account")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("klarna_account")
