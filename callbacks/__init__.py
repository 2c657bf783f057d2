"""kco-sync: the merchant side of Klarna Checkout's callbacks, as a Flask app factory."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask

from callbacks.rules.shop import Shop, load_shop
from callbacks.store.database import Store
from callbacks.web.jsonprovider import OrjsonProvider

if TYPE_CHECKING:  # imported lazily at run time, see _lifecycle
    from callbacks.klarna.lifecycle import Lifecycle


@dataclass
class Kco:
    """What every request needs, built once per process: `app.extensions["kco"]`."""

    shop: Shop
    store: Store
    lifecycle: Lifecycle


def create_app(config=None) -> Flask:
    """`config`: None (the environment), a `config.Config`, or a mapping of overrides
    (`{"TESTING": True, "DATABASE_URL": ...}` starts from `TestConfig`)."""
    from config import Config, TestConfig, from_environment

    if isinstance(config, Config):
        settings = config
    elif isinstance(config, Mapping) and config.get("TESTING"):
        settings = TestConfig()
    else:
        settings = from_environment()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.from_object(settings)
    if isinstance(config, Mapping):
        app.config.update(config)
    logging.basicConfig(level=logging.INFO)

    from callbacks import catalog

    store = Store(app.config["DATABASE_URL"])
    if app.config["KCO_AUTO_MIGRATE"]:
        store.migrate()
    shop, products = catalog.with_catalog(load_shop(app.config["KCO_SHOP_FILE"]), store)
    app.extensions["kco"] = Kco(shop, store, _lifecycle(app, shop, store))

    from callbacks.cli import commands as cli
    from callbacks.klarna import views as kco
    from callbacks.web import errors, i18n, slots
    slots.init_app(app)  # KCO_WORK_SLOTS (the views that take a slot say @slots.guarded)
    errors.init_app(app)
    i18n.init_app(app)  # gettext catalogs in callbacks/translations (docs/translations.md)
    app.register_blueprint(kco.bp)
    from callbacks.storefront import views as storefront
    api = storefront.init_app(app)  # /api, /healthz, /metrics, /openapi.json, long-poll listener
    from callbacks.web import deadline, headers, throttle
    deadline.init_app(app)  # KCO_BODY_TIMEOUT, and places for threads waiting on a body
    throttle.init_app(app)  # per-session limits on browser tokens; support sign-in guesses
    headers.init_app(app)  # CSP + nonce, framing, nosniff, Referrer-Policy, no-store on tokens
    from callbacks.web import browser
    browser.init_app(app)  # CORS for KCO_CORS_ORIGINS (the token endpoint is the storefront's)
    if app.config["KCO_SHOP_PAGES"]:
        from callbacks.demoshop import views as demoshop
        app.register_blueprint(demoshop.bp)  # the demo shop: /, /cart, /checkout, …
    cli.init_app(app)
    catalog.init_app(app, api, products)  # /api/catalog (in /openapi.json), `flask kco catalog …`
    from callbacks.webhooks import api as webhooks
    webhooks.init_app(app, api)  # /api/webhook-endpoints (the worker: `flask kco deliver`)
    from callbacks.orders import api as orders
    orders.init_app(app, api)  # /api/orders/{id}: read, capture, refund, cancel, …
    from callbacks import support
    support.init_app(app)  # /support/, and the record of storefront writes it shows
    return app


def _lifecycle(app: Flask, shop: Shop, store: Store):
    from callbacks.klarna import accounts as klarna_accounts
    from callbacks.klarna.client import KlarnaClient
    from callbacks.klarna.lifecycle import Lifecycle
    from callbacks.klarna.order import Urls
    from callbacks.store import activity

    cfg = app.config
    urls = Urls(cfg["KCO_PUBLIC_URL"], cfg["KCO_TERMS_URL"], cfg["KCO_CHECKOUT_URL"],
                cfg["KCO_CONFIRMATION_URL"], cfg["KCO_CALLBACK_SECRET"])

    def on_call(operation, status, seconds):
        metrics = app.extensions.get("kco_metrics")
        if metrics:
            metrics.observe_klarna(operation, status, seconds)
        activity.record(store, activity.KLARNA_API, operation, status, seconds)  # for support

    # The shop file's Klarna accounts, with their passwords from the environment: a missing
    # one stops start-up here, naming the file and key (callbacks/klarna/accounts.py).
    accounts = klarna_accounts.resolve(shop, cfg)

    def make_client(name: str | None) -> KlarnaClient:
        if name is None:  # the environment's account: the app's config as it is now
            return KlarnaClient.from_config(cfg, on_call=on_call)
        account = accounts.get(name)
        return KlarnaClient.from_config({**cfg, "KLARNA_API_URL": account.api_url,
                                         "KLARNA_USERNAME": account.username,
                                         "KLARNA_PASSWORD": account.password}, on_call=on_call)

    return Lifecycle(shop, store, make_client, urls, accounts)
