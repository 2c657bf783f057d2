"""kco-sync: the merchant side of Klarna Checkout's callbacks, as a Flask app factory."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

from flask import Flask

from .shop import Shop, load_shop
from .store import Store


@dataclass
class Kco:
    """What every request needs, built once per process: `app.extensions["kco"]`."""

    shop: Shop
    store: Store


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
    app.config.from_object(settings)
    if isinstance(config, Mapping):
        app.config.update(config)
    logging.basicConfig(level=logging.INFO)

    shop = load_shop(app.config["KCO_SHOP_FILE"])
    store = Store(app.config["DATABASE_URL"])
    if app.config["KCO_AUTO_MIGRATE"]:
        store.migrate()
    app.extensions["kco"] = Kco(shop, store)

    from . import cli, errors, kco
    errors.init_app(app)
    app.register_blueprint(kco.bp)
    cli.init_app(app)
    return app
