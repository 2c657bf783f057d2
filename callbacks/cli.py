"""`flask --app wsgi kco …`: operator commands."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

kco_cli = AppGroup("kco", help="kco-sync operations.")


@kco_cli.command("migrate")
def migrate():
    """Bring the database schema up to date (safe to run repeatedly)."""
    store = current_app.extensions["kco"].store
    revision = store.migrate()
    click.echo(f"database {store.engine.url.render_as_string(hide_password=True)} is at revision {revision}")


def init_app(app: Flask) -> None:
    app.cli.add_command(kco_cli)
