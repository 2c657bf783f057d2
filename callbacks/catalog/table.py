"""The products table and the catalog version that tells every worker what changed.

Each write bumps `catalog_state.version` by one and stamps the rows it changed with the new
version, in the same transaction. A worker that last saw version V asks "which SKUs have a
version > V" and forgets only those, so a price change reaches every worker and instance on
their next request without a message bus, and a re-import of an unchanged file changes nothing
(rows are compared by a digest of their content). On PostgreSQL the bump also sends
`pg_notify('kco_catalog', version)` in that transaction, so workers learn of it without asking
(watch.py); a notification is delivered only if the write commits.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from callbacks.rules import ksa
from callbacks.rules.shop import Product
from callbacks.store.database import _dialect_insert, metadata, utcnow

products = sa.Table(
    "products", metadata,
    sa.Column("sku", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("names", sa.JSON, nullable=False),
    sa.Column("type", sa.String(10), nullable=False),
    sa.Column("tax_class", sa.String(64), nullable=False),
    sa.Column("prices", sa.JSON, nullable=False),
    sa.Column("stock", sa.Integer),
    sa.Column("shipping_attributes", sa.JSON),  # Klarna's, for the Shipping Assistant (rules/ksa.py)
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

catalog_state = sa.Table(
    "catalog_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

SELECT_VERSION = sa.select(catalog_state.c.version).where(catalog_state.c.id == 1)
SELECT_PRODUCT = sa.select(products).where(products.c.sku == sa.bindparam("b_sku"))
CHANGED_SINCE = (sa.select(products.c.sku).where(products.c.version > sa.bindparam("b_version"))
                 .limit(sa.bindparam("b_limit")))
CHUNK = 1000
CHANNEL = "kco_catalog"  # watch.py LISTENs on it


@dataclass(frozen=True)
class Written:
    inserted: int
    updated: int
    unchanged: int
    version: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def digest(product: Product) -> str:
    values = row_values(product, with_digest=False)
    if values["shipping_attributes"] is None:  # so rows written before the column keep theirs
        del values["shipping_attributes"]
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def row_values(product: Product, *, with_digest: bool = True) -> dict:
    values = {"sku": product.sku, "name": product.name, "names": dict(product.names),
              "type": product.type, "tax_class": product.tax_class,
              "prices": dict(product.prices), "stock": product.stock,
              "shipping_attributes": ksa.line_attributes(product)}
    if with_digest:
        values["digest"] = digest(product)
    return values


def product_from_row(row) -> Product:
    attributes = row.shipping_attributes
    return Product(sku=row.sku, name=row.name, type=row.type, tax_class=row.tax_class,
                   prices=MappingProxyType(dict(row.prices)),
                   names=MappingProxyType(dict(row.names)), stock=row.stock,
                   shipping_attributes=(ksa.parse_shipping_attributes(attributes, "shipping_attributes")
                                        if attributes else None))


def current_version(conn: sa.Connection) -> int:
    return conn.execute(SELECT_VERSION).scalar_one_or_none() or 0


def bump(conn: sa.Connection) -> int:
    """The next catalog version, inside the caller's write transaction (see the module doc)."""
    version = conn.execute(catalog_state.update().where(catalog_state.c.id == 1)
                           .values(version=catalog_state.c.version + 1)
                           .returning(catalog_state.c.version)).scalar_one()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_notify(CHANNEL, str(version))))
    return version


def upsert(conn: sa.Connection, items: Iterable[Product], progress=None) -> Written:
    """Insert or update `items` inside the caller's write transaction. Only rows whose content
    differs are written and stamped, so repeating an import is a no-op (idempotent)."""
    items = list(items)
    known: dict[str, str] = {}
    skus = [p.sku for p in items]
    for start in range(0, len(skus), CHUNK):
        chunk = skus[start:start + CHUNK]
        known.update(conn.execute(sa.select(products.c.sku, products.c.digest)
                                  .where(products.c.sku.in_(chunk))).all())
    changed: list[dict[str, Any]] = []
    for product in items:
        values = row_values(product)
        if known.get(product.sku) != values["digest"]:
            changed.append(values)
    inserted = sum(1 for v in changed if v["sku"] not in known)
    if not changed:
        return Written(0, 0, len(items), current_version(conn))
    version = bump(conn)
    now = utcnow()
    insert = _dialect_insert(conn)(products)
    statement = insert.on_conflict_do_update(
        index_elements=["sku"],
        set_={c: insert.excluded[c] for c in ("name", "names", "type", "tax_class", "prices",
                                              "stock", "shipping_attributes", "digest", "version",
                                              "updated_at")})
    for start in range(0, len(changed), CHUNK):
        batch = changed[start:start + CHUNK]
        conn.execute(statement, [{**v, "version": version, "updated_at": now} for v in batch])
        if progress is not None:
            progress(len(batch))
    return Written(inserted, len(changed) - inserted, len(items) - len(changed), version)


def as_json(product: Product) -> dict:
    out = {"reference": product.sku, "name": product.name, "names": dict(product.names),
           "type": product.type, "tax_class": product.tax_class,
           "prices": dict(product.prices), "stock": product.stock}
    attributes = ksa.line_attributes(product)
    if attributes:
        out["shipping_attributes"] = attributes
    return out


def fetch(conn: sa.Connection, sku: str) -> Product | None:
    row = conn.execute(SELECT_PRODUCT, {"b_sku": sku}).first()
    return product_from_row(row) if row else None


def count(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(products)).scalar_one()


def skus(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(products.c.sku).order_by(products.c.sku)).scalars())
