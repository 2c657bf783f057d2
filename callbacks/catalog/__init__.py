"""The product catalog in the database, for shops too large for a shop file: a table, an
importer, an API and a cache.

Pricing reads products through one seam, `Shop.products`: a mapping from SKU to Product. With
a catalog it is `CatalogProducts` (cache.py), which answers from memory, falls back to the
database for a SKU it has not seen, and to the shop file's [products] for a SKU the database
does not have — so small shops and the example keep their file and need no import. Callbacks
never call out of the service: the database is ours.
"""
from __future__ import annotations

import dataclasses

from flask import Flask
from flask_smorest import Api

from callbacks.catalog.cache import CatalogProducts
from callbacks.rules.shop import Shop
from callbacks.store.database import Store


def with_catalog(shop: Shop, store: Store) -> tuple[Shop, CatalogProducts]:
    products = CatalogProducts(store, shop.products)
    return dataclasses.replace(shop, products=products), products


def init_app(app: Flask, api: Api, products: CatalogProducts) -> None:
    from callbacks.catalog import api as views
    from callbacks.catalog import cli

    app.extensions["kco_catalog"] = products
    # A flag per request, no query: the first product read of the request checks the version.
    app.before_request(products.begin_request)
    api.register_blueprint(views.bp)  # documented in /openapi.json with the storefront's
    cli.init_app(app)
