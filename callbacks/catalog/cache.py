"""`Shop.products` backed by the catalog table: memory first, the database on a miss.

A callback prices a cart from memory. On its first product read a request asks whether the
catalog changed; when it did, the SKUs changed since are forgotten and read again on their next
use, so a price change reaches every worker and every instance on their next request (the
issue's "next re-price"), and validation compares with the current price. Requests that price
nothing ask nothing.

How it asks: reading the catalog version row per request cost ~10-15 % of a callback's CPU
(BENCHMARKS.md), so a request compares what it has with a cheaper signal. On PostgreSQL writers
`pg_notify` the new version and a listener thread per worker records it (watch.py); a request
compares two numbers. On SQLite (one host by nature) writers replace a stamp file beside the
database after they commit, and a request only stats it. Either way the version row is still
read at least every RECHECK seconds (and on every request while the listener is not caught
up), for writers that bypass us and notifications lost with a connection.

Thread safety: gthread workers share one cache. A miss reads the database outside the lock and
keeps the row only if no refresh happened meanwhile; otherwise a row read just before a change
could be kept after the refresh that should have dropped it.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping

from callbacks.catalog import rows, table
from callbacks.catalog.watch import CatalogWatch
from callbacks.rules.shop import Product
from callbacks.store.database import Store

MAX_CACHED = 200_000  # SKUs kept in memory (a miss costs one primary-key read)
RECHECK = 1.0  # seconds: the longest a worker trusts the stamp file or the listener alone
_ABSENT = None


def stamp_path(store: Store) -> str | None:
    database = store.engine.url.database
    if store.is_postgres or not database or database == ":memory:":
        return None
    return f"{database}.catalog-stamp"


def announce(store: Store, version: int) -> None:
    """After a catalog write has committed: tell this host's workers (see the module doc)."""
    path = stamp_path(store)
    if path is None:
        return
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}"
    with open(temporary, "w") as handle:
        handle.write(str(version))
    os.replace(temporary, path)  # a new inode: readers see the change in stat()


def _signature(path: str):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class CatalogProducts(Mapping):
    def __init__(self, store: Store, file_products: Mapping[str, Product],
                 max_cached: int = MAX_CACHED):
        self.store = store
        self.file_products = file_products
        self.max_cached = max_cached
        self._cache: dict[str, Product | None] = {}
        self._version: int | None = None  # None: never looked
        self._lock = threading.Lock()
        self._local = threading.local()
        self._stamp = stamp_path(store)
        self._stamp_seen = None
        self._checked_at = 0.0
        self.watch = CatalogWatch(store, self._read_version) if store.is_postgres else None

    # -- freshness -------------------------------------------------------------------------
    def begin_request(self) -> None:
        self._local.checked = False

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()

    def written(self, version: int) -> None:
        """This process committed catalog `version`: its next request need not wait for the
        notification (other processes learn of it from theirs, or the stamp file)."""
        if self.watch is not None:
            self.watch.saw(version)

    def _read_version(self) -> int:
        with self.store.reading() as conn:
            return table.current_version(conn)

    def refresh(self) -> None:
        """Forget what changed since the version this worker last saw."""
        stamp = _signature(self._stamp) if self._stamp else None  # before the read: see _fresh
        self._checked_at = time.monotonic()
        with self.store.reading() as conn:
            version = table.current_version(conn)
            if version == self._version:
                self._stamp_seen = stamp
                return
            changed = (None if self._version is None else
                       conn.execute(table.CHANGED_SINCE, {"b_version": self._version,
                                                          "b_limit": self.max_cached}).scalars().all())
        with self._lock:
            if changed is None or len(changed) >= self.max_cached:
                self._cache.clear()
            else:
                for sku in changed:
                    self._cache.pop(sku, None)
            self._version = version
            self._stamp_seen = stamp

    def _fresh(self) -> None:
        checked = getattr(self._local, "checked", None)
        if checked is True:
            return
        if not self._current():
            self.refresh()
        if checked is False:  # in a request; outside one (CLI, scripts) check on every read
            self._local.checked = True

    def _current(self) -> bool:
        """May the request trust the cache without reading the version row?"""
        if self.watch is not None:  # asked first: it also keeps the listener running
            signal = self.watch.current() and self.watch.version <= (self._version or 0)
        else:
            signal = self._stamp is not None and _signature(self._stamp) == self._stamp_seen
        return (signal and self._version is not None
                and time.monotonic() - self._checked_at < RECHECK)

    # -- the Mapping -----------------------------------------------------------------------
    def get(self, sku: str, default=None):
        self._fresh()
        try:
            found = self._cache[sku]
        except KeyError:
            found = self._load(sku)
        if found is _ABSENT:
            found = self.file_products.get(sku)
        return default if found is None else found

    def __getitem__(self, sku: str) -> Product:
        found = self.get(sku)
        if found is None:
            raise KeyError(sku)
        return found

    def __contains__(self, sku) -> bool:
        return isinstance(sku, str) and self.get(sku) is not None

    def _load(self, sku: str) -> Product | None:
        if not isinstance(sku, str) or not rows.SKU_SHAPE.fullmatch(sku):
            # No row has such a SKU (the importer refuses it), and the database could not even
            # be asked: PostgreSQL refuses NUL, no driver encodes a lone surrogate. A cart or a
            # Klarna line naming one is an unknown product, not a 500.
            return _ABSENT
        seen = self._version
        with self.store.reading() as conn:
            product = table.fetch(conn, sku)
        with self._lock:
            if self._version == seen:
                if len(self._cache) >= self.max_cached:
                    self._cache.clear()
                self._cache[sku] = product
        return product

    def __iter__(self) -> Iterator[str]:
        """Every SKU, the database's and the file's (a full scan: for tools, not callbacks)."""
        with self.store.reading() as conn:
            in_db = table.skus(conn)
        seen = set(in_db)
        yield from in_db
        yield from (sku for sku in self.file_products if sku not in seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)
