"""Extra merchant data per session (`session_attachments`, kept out of the state, the events and
the callback log), and Klarna's shipping_attributes per catalog product (the Shipping Assistant).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-14
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_attachments",
        sa.Column("sid", sa.String(128), primary_key=True),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.add_column("products", sa.Column("shipping_attributes", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("shipping_attributes")
    op.drop_table("session_attachments")
