"""Configuration from the environment (docs/design.md §2); `.env` is read in development.

Every variable is declared in settings.py (its kind, default and meaning); this module reads them
and checks them. Production (`KCO_ENV=production`) refuses to start on a setting that would let
someone else in: a weak secret (blank, shorter than 32 characters, low-entropy, published in this
repository or embedding such a value), one secret serving as another (whoever holds the API key
could then forge callbacks and browser tokens), a non-https public URL (Klarna calls the
synchronous callbacks over https only), a Klarna API URL left to its sandbox default or not
https (the Klarna password travels in every request) — the environment's Klarna settings only
when a market of the shop file sells through them, and the same rules for the shop file's own
Klarna accounts (callbacks/klarna/accounts.py) — and a CORS origin that is not one https
origin. `*` and `null` are refused everywhere: `null` is the origin of every sandboxed frame and
file:// page. `flask --app wsgi kco secret` prints a strong secret.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

import settings

DEV_CALLBACK_SECRET = "dev-callback-secret-change-me"
DEV_API_KEY = "dev-api-key-change-me"
DEV_KLARNA_PASSWORD = "sandbox"
MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 8  # a random 32-character hex string has ~14; "ab12" * 8 has 4
# Every secret setting and the values this repository publishes for it (defaults, tests, docs).
SECRETS = {
    "KCO_CALLBACK_SECRET": {DEV_CALLBACK_SECRET, "test-callback-secret"},
    "KCO_API_KEY": {DEV_API_KEY, "test-api-key"},
    "KLARNA_PASSWORD": {DEV_KLARNA_PASSWORD},
    "KCO_SUPPORT_PASSWORD": {"support", "s3cret-support", "browser-test-support-password"},
}
# Published values no secret may contain (the long ones: "sandbox" or "support" inside a
# 43-character random value is a coincidence, not a leak; the development keys are not).
EMBEDDED = (DEV_CALLBACK_SECRET, DEV_API_KEY, "test-callback-secret", "test-api-key")
OPTIONAL_SECRETS = frozenset({"KCO_SUPPORT_PASSWORD"})  # unset: that feature is off
ENVIRONMENTS = ("development", "production")
FIX = "Set a random value of 32 characters or more (`flask --app wsgi kco secret` prints one)."
# Where the SQLite database and the rate-limit counters live by default: instance/ in a checkout
# (the folder with pyproject.toml), and in an installed copy (`pip install .`), which has no
# project folder, under its environment's prefix, where Flask puts an installed app's instance
# folder: <venv>/var/kco-sync-instance.
_HERE = Path(__file__).resolve().parent
INSTANCE = (_HERE / "instance" if (_HERE / "pyproject.toml").is_file()
            else Path(sys.prefix) / "var" / "kco-sync-instance")


class ConfigError(RuntimeError):
    pass


def whole_number(name: str, default: int | None = None, minimum: int | None = None) -> int:
    """A count from the environment; unset or blank is `default` (else the one settings.py
    declares). Read here for Config, and by callbacks/store/engine.py for the pool sizes, which
    every Store reads when it is made."""
    minimum = {"KCO_DB_POOL_SIZE": 1}.get(name, 0) if minimum is None else minimum
    value = (settings.raw(name) or "").strip()
    if not value:
        return int(settings.declared(name).default or 0) if default is None else default
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
    return int(value)


def environment() -> str:
    """KCO_ENV, normalised: `Production` or `production ` is production, not a development run
    with the development keys; an unknown value stops start-up."""
    value = (settings.raw("KCO_ENV") or "development").strip().lower()
    if value not in ENVIRONMENTS:
        raise ConfigError(f"KCO_ENV must be one of {', '.join(ENVIRONMENTS)} (or unset: development), "
                          f"not {settings.raw('KCO_ENV')!r}")
    return value


@overload
def _env(name: str, default: str) -> str: ...
@overload
def _env(name: str, default: None = None) -> str | None: ...
def _env(name: str, default: str | None = None) -> str | None:
    value = settings.text(name)
    return default if value is None else value


def _given(name: str) -> str:
    """A setting settings.py gives a default: never None."""
    value = settings.text(name)
    assert value is not None, f"{name} has a declared default"
    return value


class Config:
    """Read at construction, not at import, so tests can set the environment first."""

    TESTING = False
    PRODUCTION = False

    def __init__(self):
        self.DATABASE_URL = _env("DATABASE_URL", f"sqlite:///{INSTANCE / 'kco.sqlite3'}")
        self.KCO_SHOP_FILE = _env("KCO_SHOP_FILE")
        self.KCO_CALLBACK_SECRET = _env("KCO_CALLBACK_SECRET")
        self.KCO_API_KEY = _env("KCO_API_KEY")
        self.KCO_SUPPORT_PASSWORD = _env("KCO_SUPPORT_PASSWORD")
        self.KCO_PUBLIC_URL = _given("KCO_PUBLIC_URL").rstrip("/")
        self.KCO_TERMS_URL = _env("KCO_TERMS_URL", f"{self.KCO_PUBLIC_URL}/terms")
        self.KCO_CHECKOUT_URL = _env("KCO_CHECKOUT_URL", f"{self.KCO_PUBLIC_URL}/checkout")
        self.KCO_CONFIRMATION_URL = _env("KCO_CONFIRMATION_URL", f"{self.KCO_PUBLIC_URL}/confirmation")
        self.KLARNA_API_URL = _given("KLARNA_API_URL").rstrip("/")
        self.KLARNA_USERNAME = _env("KLARNA_USERNAME")
        self.KLARNA_PASSWORD = _env("KLARNA_PASSWORD")
        self.KLARNA_TIMEOUT = _env("KLARNA_TIMEOUT")  # connect,read seconds
        self.KLARNA_RETRIES = whole_number("KLARNA_RETRIES")
        self.MAX_CONTENT_LENGTH = 1024 * 1024
        # Cart-sized requests worked on at once per process (callbacks/web/slots.py); 0: no limit.
        self.KCO_WORK_SLOTS = whole_number("KCO_WORK_SLOTS")
        self.KCO_AUTO_MIGRATE = _env("KCO_AUTO_MIGRATE") != "0"
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
        # Wrong support sign-ins per client address (`limits` syntax), and how many proxies in
        # front append the client's address to X-Forwarded-For (callbacks/web/throttle.py).
        self.KCO_SUPPORT_AUTH_LIMIT = _env("KCO_SUPPORT_AUTH_LIMIT", "10 per minute")
        self.KCO_TRUSTED_PROXIES = whole_number("KCO_TRUSTED_PROXIES")
        # Seconds a request body may take to arrive, per started 256 KiB (callbacks/web/deadline.py).
        self.KCO_BODY_TIMEOUT = whole_number("KCO_BODY_TIMEOUT", minimum=1)
        # Webhooks (docs/webhooks.md): http:// and local receivers outside production only; the
        # retry schedule (seconds before each attempt), the timeout and when an endpoint is disabled.
        self.KCO_WEBHOOK_PRIVATE_URLS = _env("KCO_WEBHOOK_PRIVATE_URLS", "1") != "0"
        self.KCO_WEBHOOK_BACKOFF = _env("KCO_WEBHOOK_BACKOFF", "0,5,300,1800,7200,18000,36000,36000")
        self.KCO_WEBHOOK_TIMEOUT = float(_env("KCO_WEBHOOK_TIMEOUT", "10"))
        self.KCO_WEBHOOK_DISABLE_AFTER = float(_env("KCO_WEBHOOK_DISABLE_AFTER", str(5 * 86400)))
        self.finish()

    def finish(self):
        _check_cors_origins(self.KCO_CORS_ORIGINS, https_only=self.PRODUCTION)
        if self.PRODUCTION:
            # The environment's Klarna account is held to these rules only when a market sells
            # through it: a shop whose every market names a [klarna_accounts] entry needs no
            # KLARNA_PASSWORD (callbacks/klarna/accounts.py checks the named ones instead).
            shop = _shop(self.KCO_SHOP_FILE)
            environment_account = shop is None or shop.uses_environment_account
            _check_secrets({name: getattr(self, name) for name in SECRETS
                            if environment_account or name != "KLARNA_PASSWORD"})
            if not self.KCO_PUBLIC_URL.startswith("https://"):
                raise ConfigError("KCO_ENV=production needs an https:// KCO_PUBLIC_URL "
                                  "(Klarna calls the synchronous callbacks over https only)")
            if environment_account:
                _check_klarna_api_url(settings.raw("KLARNA_API_URL"))
            if shop is not None:
                _check_klarna_accounts(shop, self)
            self.KCO_AUTO_MIGRATE = False
            self.KCO_WEBHOOK_PRIVATE_URLS = False  # server-side request forgery (webhooks/ssrf.py)
        if self.TESTING:
            self.KCO_RATE_LIMIT_STORAGE = self.KCO_RATE_LIMIT_STORAGE or "memory://"  # per app
            self.KCO_CALLBACK_SECRET = self.KCO_CALLBACK_SECRET or "test-callback-secret"
            self.KCO_API_KEY = self.KCO_API_KEY or "test-api-key"
        unset = [n for n in ("KCO_CALLBACK_SECRET", "KCO_API_KEY") if not getattr(self, n)]
        if unset:
            _warn_development_keys(unset)
        self.KCO_CALLBACK_SECRET = self.KCO_CALLBACK_SECRET or DEV_CALLBACK_SECRET
        self.KCO_API_KEY = self.KCO_API_KEY or DEV_API_KEY


def _check_secrets(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if name in OPTIONAL_SECRETS and value is None:
            continue
        problem = weak_secret(value, SECRETS[name])
        if problem:
            off = " or leave it unset (the feature is then off)" if name in OPTIONAL_SECRETS else ""
            raise ConfigError(f"KCO_ENV=production refuses {name}: {problem}. {FIX[:-1]}{off}.")
    seen: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        key = folded(value)
        if key in seen:
            raise ConfigError(f"KCO_ENV=production refuses {name}: it is the same value as {seen[key]}, "
                              f"so whoever holds one holds both. Give each its own random value "
                              "(`flask --app wsgi kco secret` prints one).")
        seen[key] = name


def _shop(shop_file: str | None):
    """The shop file, for the Klarna accounts it sells through; None when it cannot be read
    (the app's own load then says why, and every Klarna setting is held to the rules)."""
    from callbacks.rules.shop import ShopFileError, load_shop

    try:
        return load_shop(shop_file)
    except ShopFileError:
        return None


def _check_klarna_accounts(shop, config: Config) -> None:
    """The shop file's [klarna_accounts], held to the rules of KLARNA_API_URL and
    KLARNA_PASSWORD (callbacks/klarna/accounts.py); a missing password is the app's load's
    to report, naming the file and key."""
    from callbacks.klarna import accounts
    from callbacks.rules.shop import ShopFileError

    try:
        accounts.resolve(shop, config, production=True)
    except ShopFileError:
        pass


def _check_klarna_api_url(url: str | None) -> None:
    if url is None:
        raise ConfigError("KCO_ENV=production needs KLARNA_API_URL set explicitly (its default is the "
                          "local sandbox): Klarna's https:// API base URL of your region, e.g. "
                          "https://api.klarna.com or https://api.playground.klarna.com")
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"KCO_ENV=production refuses KLARNA_API_URL={url!r}: the Klarna password travels "
                          "in every request, so it must be an https:// URL with a host, e.g. "
                          "https://api.klarna.com")


def _check_cors_origins(raw: str | None, https_only: bool) -> None:
    """Each entry one origin, as a browser sends it in `Origin`: scheme://host[:port]."""
    schemes = ("https",) if https_only else ("https", "http")
    wanted = "https://host[:port]" if https_only else "https://host[:port] (or http:// outside production)"
    for entry in (e.strip().rstrip("/") for e in (raw or "").split(",")):
        if not entry:
            continue
        if entry == "*" or entry.lower() == "null":
            raise ConfigError(f"KCO_CORS_ORIGINS refuses {entry!r}: it would let any page (a sandboxed "
                              f"frame or a file:// page for `null`) use a browser token. List each "
                              f"storefront origin instead, as {wanted}")
        parts = urlsplit(entry)
        if (parts.scheme not in schemes or not parts.hostname or "*" in entry or parts.path
                or parts.query or parts.fragment or parts.username or _port_is_bad(parts)):
            raise ConfigError(f"KCO_CORS_ORIGINS refuses {entry!r}: each entry must be one origin, "
                              f"{wanted}, without a path or wildcard (e.g. https://shop.example)")


def _port_is_bad(parts) -> bool:
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return True
    return False


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
    key = folded(value)
    if value in published or key in {p.lower() for p in published}:
        return "it is a development value published in this repository"
    embedded = next((p for p in EMBEDDED if p in key), None)
    if embedded:
        return f"it contains {embedded!r}, a development value published in this repository"
    if len(value) < MIN_SECRET_LENGTH:
        return f"it is {len(value)} characters long, fewer than {MIN_SECRET_LENGTH}"
    if repeats(key) or len(set(key)) < MIN_DISTINCT_CHARACTERS:
        return (f"it is low-entropy (one pattern repeated, or fewer than {MIN_DISTINCT_CHARACTERS} "
                "different characters)")
    return None


def folded(value: str) -> str:
    """A secret as two are compared: letter case and surrounding spaces do not make it another."""
    return value.strip().lower()


def repeats(text: str) -> bool:
    """Is `text` one pattern written again and again, the last time perhaps cut short
    ("ab" * 16, a 16-character random value twice, "q1w2e3r4t5" * 4 + "q1w")? Then it is
    worth no more than its first period, however long it is. A random value never is."""
    return any(text[period:] == text[:-period] for period in range(1, len(text) // 2 + 1))


class ProductionConfig(Config):
    PRODUCTION = True


class TestConfig(Config):
    TESTING = True


def from_environment() -> Config:
    return ProductionConfig() if environment() == "production" else Config()
