"""The product catalog (products, catalog_state) and support's activity record.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("names", sa.JSON, nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("tax_class", sa.String(64), nullable=False),
        sa.Column("prices", sa.JSON, nullable=False),
        sa.Column("stock", sa.Integer),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    state = op.create_table(
        "catalog_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "version": 0}])
    op.create_table(
        "activity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("session", sa.String(128), index=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("detail", sa.JSON),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("activity")
    op.drop_table("catalog_state")
    op.drop_table("products")
