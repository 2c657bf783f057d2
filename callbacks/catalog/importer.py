"""`flask kco catalog import FILE`: CSV or JSON Lines into the products table, all or nothing.

Every row is checked before anything is written, so a file with one bad row imports nothing
and the report names every rejected row (its line in the file) and field; a good file is
written in one transaction, so a crash mid-way leaves the old catalog whole. Rows whose content
is unchanged are not written again: importing the same file twice changes nothing.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from callbacks.catalog import rows, table
from callbacks.catalog.cache import announce
from callbacks.rules.shop import Product, Shop
from callbacks.store.database import Store

MAX_REPORTED = 50


@dataclass
class Rejected:
    line: int
    reference: str | None
    errors: dict[str, list[str]]

    def __str__(self) -> str:
        fields = "; ".join(f"{f}: {' '.join(p)}" for f, p in self.errors.items())
        return f"row {self.line}{f' ({self.reference})' if self.reference else ''}: {fields}"


@dataclass
class Report:
    products: list[Product] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    written: table.Written | None = None


class FileError(ValueError):
    """A file that cannot be read at all (not found, not UTF-8, no header)."""


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise FileError(f"{path}: unknown format {suffix or '(no suffix)'!r}; use .csv or .jsonl")


def read_rows(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, flat row or None, why not) for each record; the header is line 1."""
    kind = file_format(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise FileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if kind == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey=None, strict=True)
        if not reader.fieldnames:
            raise FileError(f"{path}: empty file; the first line must be the header")
        missing = {"reference", "name", "tax_class"} - set(reader.fieldnames)
        if missing:
            raise FileError(f"{path}: the header lacks {', '.join(sorted(missing))}")
        try:
            for row in reader:
                yield reader.line_num, row, None
        except csv.Error as exc:
            raise FileError(f"{path}: line {reader.line_num}: {exc}") from None
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield number, None, f"Not valid JSON: {exc}"
            continue
        if not isinstance(value, dict):
            yield number, None, "Not a JSON object."
            continue
        yield number, value, None


def check_file(shop: Shop, path: Path, progress: Callable[[int], None] | None = None) -> Report:
    report = Report()
    first_line: dict[str, int] = {}
    from_csv = file_format(path) == "csv"
    for line, row, problem in read_rows(path):
        if progress:
            progress(1)
        if row is None:
            report.rejected.append(Rejected(line, None, {"_row": [problem or "Unreadable."]}))
            continue
        reference = row.get("reference") if isinstance(row.get("reference"), str) else None
        product, errors = rows.check_flat(shop, row, from_csv=from_csv)
        if product is not None and product.sku in first_line:
            errors = {"reference": [f"Also on row {first_line[product.sku]}."]}
        if errors or product is None:
            report.rejected.append(Rejected(line, reference, errors))
            continue
        first_line[product.sku] = line
        report.products.append(product)
    if not report.products and not report.rejected:
        raise FileError(f"{path}: no products in the file")
    return report


def import_file(shop: Shop, store: Store, path: Path, *, check_progress=None,
                write_progress=None) -> Report:
    """Check the whole file, then write it in one transaction unless a row was rejected."""
    report = check_file(shop, path, check_progress)
    if report.rejected:
        return report
    with store.write() as conn:
        report.written = table.upsert(conn, report.products, write_progress)
    announce(store, report.written.version)
    return report
