"""`flask kco catalog import FILE` and `flask kco catalog show SKU`."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from callbacks.catalog import importer, table
from callbacks.catalog.cache import announce

catalog_cli = AppGroup("catalog", help="The product catalog in the database.")


@catalog_cli.command("import")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr; default: on when stderr is a terminal.")
def import_command(path: Path, progress: bool | None):
    """Import products from a CSV (header: reference, name, tax_class, optional type and stock,
    price_<CURRENCY> and name_<language> columns) or JSON Lines file (the same keys). Nothing
    is written unless every row is valid; unchanged products are not rewritten. Exit 1 when
    rows were rejected, 2 when the file cannot be read."""
    kco = current_app.extensions["kco"]
    started = time.perf_counter()
    try:
        lines = _count_records(path)
        with click.progressbar(length=lines, label="checking", file=sys.stderr,
                               hidden=_hidden(progress)) as bar:
            report = importer.check_file(kco.shop, path, bar.update)
        if report.rejected:
            _reject(report)
        with click.progressbar(length=len(report.products), label="writing",
                               file=sys.stderr,
                               hidden=_hidden(progress)) as bar, kco.store.write() as conn:
            written = table.upsert(conn, report.products, bar.update)
        announce(kco.store, written.version)
    except importer.FileError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"{path}: {len(report.products)} products: {written.inserted} new, "
               f"{written.updated} changed, {written.unchanged} unchanged; catalog version "
               f"{written.version} ({time.perf_counter() - started:.1f} s)")


def _reject(report: importer.Report):
    for rejected in report.rejected[:importer.MAX_REPORTED]:
        click.echo(str(rejected), err=True)
    more = len(report.rejected) - importer.MAX_REPORTED
    if more > 0:
        click.echo(f"… and {more} more rejected rows", err=True)
    click.echo(f"{len(report.rejected)} rejected row(s): nothing imported", err=True)
    raise SystemExit(1)


def _hidden(progress: bool | None) -> bool:
    if progress is None:
        return not sys.stderr.isatty()
    return not progress


def _count_records(path: Path) -> int:
    importer.file_format(path)
    try:
        with path.open("rb") as handle:
            return max(sum(1 for _ in handle) - (path.suffix.lower() == ".csv"), 0)
    except FileNotFoundError:
        raise importer.FileError(f"{path}: no such file") from None


@catalog_cli.command("show")
@click.argument("sku")
def show(sku: str):
    """Print one product as pricing sees it (the database's, else the shop file's)."""
    product = current_app.extensions["kco"].shop.products.get(sku)
    if product is None:
        click.echo(f"error: no product {sku!r}", err=True)
        raise SystemExit(1)
    click.echo(json.dumps(table.as_json(product), ensure_ascii=False, indent=2))


def init_app(app: Flask) -> None:
    from callbacks.cli.commands import kco_cli

    if "catalog" not in kco_cli.commands:
        kco_cli.add_command(catalog_cli)
