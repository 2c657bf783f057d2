"""Configuration from the environment (docs/design.md §2); `.env` is read in development.

Production (`KCO_ENV=production`) refuses to start with a weak secret or a non-https public
URL: Klarna requires https for the synchronous callbacks, and a guessable secret would let
anyone forge them. A secret is weak when it is blank, shorter than 32 characters, or one of the
development values published in this repository; `flask --app wsgi kco secret` prints a strong one.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

DEV_CALLBACK_SECRET = "dev-callback-secret-change-me"
DEV_API_KEY = "dev-api-key-change-me"
DEV_KLARNA_PASSWORD = "sandbox"
MIN_SECRET_LENGTH = 32
# Every secret setting and the values this repository publishes for it (defaults, tests, docs).
SECRETS = {
    "KCO_CALLBACK_SECRET": {DEV_CALLBACK_SECRET, "test-callback-secret"},
    "KCO_API_KEY": {DEV_API_KEY, "test-api-key"},
    "KLARNA_PASSWORD": {DEV_KLARNA_PASSWORD},
}
INSTANCE = Path(__file__).parent / "instance"


class ConfigError(RuntimeError):
    pass


def whole_number(name: str, default: int, minimum: int = 0) -> int:
    """A count from the environment; blank is `default`. Read here for Config, and by
    callbacks/store/engine.py for the pool sizes, which every Store reads when it is made."""
    value = (os.environ.get(name) or "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
    return int(value)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


class Config:
    """Read at construction, not at import, so tests can set the environment first."""

    TESTING = False
    PRODUCTION = False

    def __init__(self):
        self.DATABASE_URL = _env("DATABASE_URL", f"sqlite:///{INSTANCE / 'kco.sqlite3'}")
        self.KCO_SHOP_FILE = _env("KCO_SHOP_FILE")
        self.KCO_CALLBACK_SECRET = _env("KCO_CALLBACK_SECRET")
        self.KCO_API_KEY = _env("KCO_API_KEY")
        self.KCO_PUBLIC_URL = _env("KCO_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
        self.KCO_TERMS_URL = _env("KCO_TERMS_URL", f"{self.KCO_PUBLIC_URL}/terms")
        self.KCO_CHECKOUT_URL = _env("KCO_CHECKOUT_URL", f"{self.KCO_PUBLIC_URL}/checkout")
        self.KCO_CONFIRMATION_URL = _env("KCO_CONFIRMATION_URL", f"{self.KCO_PUBLIC_URL}/confirmation")
        self.KLARNA_API_URL = _env("KLARNA_API_URL", "http://127.0.0.1:8001").rstrip("/")
        self.KLARNA_USERNAME = _env("KLARNA_USERNAME", "sandbox")
        self.KLARNA_PASSWORD = _env("KLARNA_PASSWORD", DEV_KLARNA_PASSWORD)
        self.KLARNA_TIMEOUT = _env("KLARNA_TIMEOUT", "3.05,10")  # connect,read seconds
        self.KLARNA_RETRIES = int(_env("KLARNA_RETRIES", "3"))
        self.MAX_CONTENT_LENGTH = 1024 * 1024
        # Cart-sized requests worked on at once per process (callbacks/web/slots.py); 0: no limit.
        self.KCO_WORK_SLOTS = whole_number("KCO_WORK_SLOTS", 4)
        self.KCO_AUTO_MIGRATE = _env("KCO_AUTO_MIGRATE", "1") != "0"
        # Storefront origins whose pages may call /api/sessions/* (comma-separated); none by
        # default: same-origin pages need no CORS.
        self.KCO_CORS_ORIGINS = _env("KCO_CORS_ORIGINS", "")
        # The demo shop pages (/, /cart, /checkout, /confirmation, /terms): on outside
        # production, off in production unless KCO_SHOP_PAGES=1.
        self.KCO_SHOP_PAGES = _env("KCO_SHOP_PAGES", "0" if self.PRODUCTION else "1") != "0"
        # Per-session limit on a browser token's writes and checkout loads (`limits` syntax),
        # and where the throttles count: redis://…, memory://, file:PATH; unset: one SQLite
        # file per host (callbacks/web/throttle.py).
        self.KCO_BROWSER_RATE_LIMIT = _env("KCO_BROWSER_RATE_LIMIT", "30 per 10 seconds")
        self.KCO_RATE_LIMIT_STORAGE = _env("KCO_RATE_LIMIT_STORAGE")
        self.finish()

    def finish(self):
        if self.PRODUCTION:
            for name, published in SECRETS.items():
                problem = weak_secret(getattr(self, name), published)
                if problem:
                    raise ConfigError(f"KCO_ENV=production refuses {name}: {problem}. Set a random "
                                      "value of 32 characters or more (`flask --app wsgi kco "
                                      "secret` prints one).")
            if not self.KCO_PUBLIC_URL.startswith("https://"):
                raise ConfigError("KCO_ENV=production needs an https:// KCO_PUBLIC_URL "
                                  "(Klarna calls the synchronous callbacks over https only)")
            self.KCO_AUTO_MIGRATE = False
        if self.TESTING:
            self.KCO_RATE_LIMIT_STORAGE = self.KCO_RATE_LIMIT_STORAGE or "memory://"  # per app
            self.KCO_CALLBACK_SECRET = self.KCO_CALLBACK_SECRET or "test-callback-secret"
            self.KCO_API_KEY = self.KCO_API_KEY or "test-api-key"
        unset = [n for n in ("KCO_CALLBACK_SECRET", "KCO_API_KEY") if not getattr(self, n)]
        if unset:
            _warn_development_keys(unset)
        self.KCO_CALLBACK_SECRET = self.KCO_CALLBACK_SECRET or DEV_CALLBACK_SECRET
        self.KCO_API_KEY = self.KCO_API_KEY or DEV_API_KEY


_warned: set[str] = set()


def _warn_development_keys(unset: list[str]) -> None:
    """One line per process: every `flask kco …` command and every gunicorn worker builds a
    Config (some several), and a newcomer should see the warning, not a wall of it."""
    fresh = [n for n in unset if n not in _warned]
    if fresh:
        _warned.update(fresh)
        logging.getLogger("config").warning(
            "%s not set: using the development key%s (never in production)",
            " and ".join(fresh) + (" is" if len(fresh) == 1 else " are"), "s" * (len(fresh) > 1))


def weak_secret(value: str | None, published=frozenset()) -> str | None:
    """Why `value` cannot guard production, or None. Whitespace counts as blank: a value of
    spaces is what a mis-quoted deployment file produces, and it is no secret."""
    if value is None or not value.strip():
        return "it is not set or blank"
    if value in published or value.strip() in published:
        return "it is a development value published in this repository"
    if len(value) < MIN_SECRET_LENGTH:
        return f"it is {len(value)} characters long, fewer than {MIN_SECRET_LENGTH}"
    return None


class ProductionConfig(Config):
    PRODUCTION = True


class TestConfig(Config):
    TESTING = True


def from_environment() -> Config:
    return ProductionConfig() if _env("KCO_ENV") == "production" else Config()
