"""Throttles: what one browser token can make us do per second, and support sign-in guesses.

* A browser token's writes (`PUT cart`, `PUT market`) and checkout loads (each one or more
  Klarna API calls with the merchant's credentials) are limited per session:
  KCO_BROWSER_RATE_LIMIT, by default 30 per 10 seconds — a burst of 30 (a shopper clicking
  + ten times is well inside it), then 3 a second on average. Beyond it: 429 with Retry-After,
  in our error body, before the body is read. The API key (the merchant's back end) is not
  throttled per session, nor are reads and long-polls, nor Klarna's callbacks, which Klarna
  retries or times out and which no browser can send (they need the callback token).
* The support console's Basic auth: KCO_SUPPORT_AUTH_LIMIT wrong passwords per client address
  per minute (10), then 429 until the minute is over (callbacks/support/views.py).

The client address is the connection's peer, unless KCO_TRUSTED_PROXIES says how many proxies
in front append to X-Forwarded-For: then Werkzeug's ProxyFix takes the address the nearest of
them saw, never one the client wrote itself (the header is the client's to forge wherever no
trusted proxy overwrote it). An IPv6 client is counted by its /64, which one host usually has
to itself: counting single addresses would give it 2^64 allowances.

Counting is the `limits` library's fixed window (one counter per key and window). The
counters live in Redis when KCO_RATE_LIMIT_STORAGE is a `redis://` URL (across instances),
else in one SQLite file per host (callbacks/store/counters.py, across the host's workers), or
`memory://` (per process: tests, one worker). If the counters cannot be reached the request
goes through, with one WARNING line: a throttle must not turn a Redis outage into an outage.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import limits
from flask import Flask, current_app, request
from flask.typing import ResponseReturnValue
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from werkzeug.middleware.proxy_fix import ProxyFix

from callbacks.web import browser
from callbacks.web.errors import api_error

log = logging.getLogger(__name__)

BROWSER_WRITES = frozenset({"PUT", "POST"})  # what a browser token opens beyond its reads
SUPPORT_AUTH_LIMIT = "10 per minute"


@dataclass
class Throttle:
    limiter: FixedWindowRateLimiter
    browser: list[limits.RateLimitItem]
    support_auth: list[limits.RateLimitItem]
    prefix: str  # namespaces the keys: several services (or test runs) may share one Redis

    def hit(self, items: list[limits.RateLimitItem], *key: str) -> int | None:
        """Count one request against every item; the seconds to wait when one is used up.
        Storage failures let the request through (see the module's docstring)."""
        try:
            for item in items:
                if not self.limiter.hit(item, self.prefix, *key):
                    return retry_after(self.limiter, item, self.prefix, *key)
        except Exception as exc:  # noqa: BLE001 - redis, the file, anything: fail open
            log.warning("rate-limit counters unavailable (%s: %s); not throttling",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None

    def refund(self, items: list[limits.RateLimitItem], *key: str) -> None:
        """Take back one hit() that let the request through: it turned out not to count (a
        right password). A refund at a window's edge may lend one extra attempt: harmless."""
        try:
            for item in items:
                self.limiter.hit(item, self.prefix, *key, cost=-1)
        except Exception as exc:  # noqa: BLE001 - as in hit()
            log.warning("rate-limit counters unavailable (%s); not refunded", type(exc).__name__)


def retry_after(limiter: RateLimiter, item: limits.RateLimitItem, *key: str) -> int:
    stats = limiter.get_window_stats(item, *key)
    return max(1, math.ceil(stats.reset_time - time.time()))


def make_storage(uri: str | None, default_path: str | os.PathLike[str]) -> limits.storage.Storage:
    if uri and uri.startswith("file:"):
        from callbacks.store.counters import FileCounters
        return FileCounters(uri.removeprefix("file:"))
    if uri:
        # A synchronous scheme (memory://, redis://): the limiter below is the synchronous one.
        return cast(limits.storage.Storage, limits.storage.storage_from_string(uri))
    from callbacks.store.counters import FileCounters
    return FileCounters(default_path)


def client_address() -> str:
    address = request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def throttle() -> Throttle:
    found: Throttle = current_app.extensions["kco_throttle"]
    return found


def limit_browser_writes() -> ResponseReturnValue | None:
    """Storefront, after authentication: a browser token's write or checkout load counts
    against its session's limit."""
    if request.method not in BROWSER_WRITES or not browser.by_browser_token():
        return None
    sid = (request.view_args or {}).get("sid") or ""
    wait = throttle().hit(throttle().browser, "browser", sid)
    if wait is None:
        return None
    rule = "; ".join(str(item) for item in throttle().browser)
    return api_error(429, f"Too many writes and checkout loads for this session with its "
                          f"browser token (at most {rule}); retry in {wait} s.",
                     {"session": ["Rate limited."]},
                     headers={"Retry-After": str(wait), "Cache-Control": "no-store"})


def _limits(cfg: Mapping[str, Any], name: str, default: str) -> list[limits.RateLimitItem]:
    """A limit setting, or start-up stops naming it (not a traceback from the `limits` parser)."""
    from config import ConfigError

    text = cfg.get(name) or default
    try:
        return limits.parse_many(text)
    except ValueError:
        raise ConfigError(f"{name} must be a limit such as {default!r} (`N per [M] second|minute|hour`, "
                          f"several separated by ';'), not {text!r}") from None


def init_app(app: Flask) -> None:
    from config import INSTANCE

    cfg = app.config
    storage = make_storage(cfg.get("KCO_RATE_LIMIT_STORAGE"), INSTANCE / "rate-limits.sqlite3")
    app.extensions["kco_throttle"] = Throttle(
        FixedWindowRateLimiter(storage),
        _limits(cfg, "KCO_BROWSER_RATE_LIMIT", "30 per 10 seconds"),
        _limits(cfg, "KCO_SUPPORT_AUTH_LIMIT", SUPPORT_AUTH_LIMIT),
        cfg.get("KCO_RATE_LIMIT_PREFIX") or "kco")
    proxies = cfg.get("KCO_TRUSTED_PROXIES") or 0
    if proxies:  # only the client's address: scheme and host stay what the URL settings say
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=0, x_host=0,  # type: ignore[method-assign]
                                x_port=0, x_prefix=0)
    # Runs after the storefront's own authenticate (registered when its views were imported),
    # which decides whether this is the API key or a browser token.
    app.before_request_funcs.setdefault("storefront", []).append(limit_browser_writes)
