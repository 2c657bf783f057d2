"""Every environment variable kco-sync reads, declared once: its name, how it is read, its
default and what it means. The service (config.py), the sandbox, gunicorn.conf.py, the scripts
and the tests read only names declared here (tests/test_settings.py greps the tree), and
docs/configuration.md is this table printed (`flask --app wsgi kco settings --markdown`, or
`python settings.py`), so the two cannot disagree.

A blank value counts as unset everywhere: that is what a mis-quoted deployment file produces.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

# Who reads a variable, in the order docs/configuration.md lists them, with each group's heading.
READERS = {
    "service": "The service (config.py, read when the app is made)",
    "gunicorn": "Processes and gunicorn (Procfile, gunicorn.conf.py, scripts/run.sh)",
    "sandbox": "The sandbox (sandbox/, a local fake Klarna)",
    "scripts": "The scripts (scripts/, .ci/run)",
    "tests": "The tests (tests/, bench/)",
}


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str           # how it is read: text, secret, url, path, whole number, seconds, flag, list, choice
    default: str | None  # the value used when it is unset, as written in the environment; None: none
    meaning: str
    read_by: str        # a key of READERS
    shown: str | None = None  # the default as the docs say it, when it is derived or long

    def default_text(self) -> str:
        if self.shown is not None:
            return self.shown
        return "unset" if self.default is None else f"`{self.default}`"


_DEV_KEY = "a development key, with one warning line per process (refused in production)"

SETTINGS: tuple[Setting, ...] = (
    # The service.
    Setting("KCO_ENV", "choice", "development",
            "`development` or `production` (case and surrounding spaces ignored; anything else stops "
            "start-up). Production refuses weak settings (docs/design.md §2), never migrates at start-up "
            "and turns the demo shop off", "service"),
    Setting("DATABASE_URL", "url", None,
            "SQLAlchemy URL; `postgresql+psycopg://user@host/db` when several instances share one "
            "database", "service", shown="`sqlite:///instance/kco.sqlite3` in the project folder; installed "
                                         "with pip, `<venv>/var/kco-sync-instance/kco.sqlite3`"),
    Setting("KCO_DB_POOL_SIZE", "whole number", "10",
            "PostgreSQL connections each worker process keeps open (at least 1); every worker of every "
            "instance has its own, and the server allows `max_connections` (100 by default) in all",
            "service"),
    Setting("KCO_DB_MAX_OVERFLOW", "whole number", "30",
            "connections a worker may open beyond `KCO_DB_POOL_SIZE` under load", "service"),
    Setting("KCO_SHOP_FILE", "path", None, "the shop file (docs/design.md §4)", "service",
            shown="`callbacks/rules/shops/example.toml`"),
    Setting("KCO_CALLBACK_SECRET", "secret", None,
            "HMAC key of the callback and browser tokens (`flask --app wsgi kco secret` prints a fresh "
            "one)", "service", shown=_DEV_KEY),
    Setting("KCO_API_KEY", "secret", None,
            "bearer key of the storefront API (likewise; never the same value as another secret)",
            "service", shown=_DEV_KEY),
    Setting("KCO_SUPPORT_PASSWORD", "secret", None,
            "password of the user `support` for the support console at `/support/`; unset, every "
            "`/support` URL is 404. Production holds it to the rule of the other secrets", "service",
            shown="unset (console off)"),
    Setting("KCO_PUBLIC_URL", "url", "http://127.0.0.1:8000",
            "base URL Klarna reaches us at, used in `merchant_urls`; https in production. Outside "
            "production, unset, it is `http://127.0.0.1:$PORT` when `PORT` is set (as scripts/run.sh "
            "sets it), else the running run.sh's (`KCO_RUN_FILE`); `kco demo` talks to the service "
            "there", "service"),
    Setting("KCO_TERMS_URL", "url", None, "the shop's terms page for `merchant_urls`", "service",
            shown="`{KCO_PUBLIC_URL}/terms`"),
    Setting("KCO_CHECKOUT_URL", "url", None,
            "the shop's checkout page for `merchant_urls` (Klarna sends the shopper back to it)", "service",
            shown="`{KCO_PUBLIC_URL}/checkout`"),
    Setting("KCO_CONFIRMATION_URL", "url", None,
            "the shop's confirmation page for `merchant_urls` (Klarna's frame goes there on purchase)",
            "service", shown="`{KCO_PUBLIC_URL}/confirmation`"),
    Setting("KLARNA_API_URL", "url", "http://127.0.0.1:8001",
            "Klarna's API base URL (region, live or playground) or the sandbox; production needs it set, "
            "and https. A Klarna regional host (Europe, North America, Oceania) sells only its "
            "region's currencies: a market without a `klarna_account` whose currency that region "
            "does not sell stops start-up, naming the market. Outside production, unset, it is "
            "`http://127.0.0.1:$SANDBOX_PORT` when "
            "`SANDBOX_PORT` is set (as scripts/run.sh sets it), else the running run.sh's "
            "(`KCO_RUN_FILE`); `kco demo` drives the sandbox there and `kco replay` makes its orders there",
            "service", shown="`http://127.0.0.1:8001` (the sandbox)"),
    Setting("KLARNA_USERNAME", "text", "sandbox", "Klarna API user name (HTTP Basic)", "service"),
    Setting("KLARNA_PASSWORD", "secret", "sandbox", "Klarna API password (HTTP Basic)", "service",
            shown="`sandbox` (the sandbox's; refused in production)"),
    Setting("KLARNA_NA_PASSWORD", "secret", "sandbox-na",
            "password of the example shop's North America Klarna account (its `password_env`, "
            "docs/design.md §4.1); a shop file of your own names its own variables. scripts/run.sh "
            "gives the sandbox the same one", "service",
            shown="`sandbox-na` (the sandbox's; refused in production)"),
    Setting("KLARNA_TIMEOUT", "text", "3.05,10", "`connect,read` timeouts in seconds of Klarna API calls",
            "service"),
    Setting("KLARNA_RETRIES", "whole number", "3", "retries of the Klarna calls that are safe to repeat",
            "service"),
    Setting("KCO_WORK_SLOTS", "whole number", "4",
            "cart-sized work one process does at once: Klarna's address_update, shipping_option_update, "
            "country_change and validation, and the pricing and writing of `PUT cart`; the others wait "
            "for a slot once their body has arrived (callbacks/web/slots.py). Raise it when PostgreSQL is "
            "far away; `0` = no limit", "service"),
    Setting("KCO_AUTO_MIGRATE", "flag", "1",
            "`0` turns off the schema upgrade at start-up outside production (production never does it: "
            "run `flask --app wsgi kco migrate`)", "service"),
    Setting("KCO_CORS_ORIGINS", "list", None,
            "comma-separated storefront origins whose pages may call `/api/sessions/*` with a browser "
            "token (docs/browser.md): `scheme://host[:port]`, https in production; `*` and `null` are "
            "refused", "service", shown="none (same-origin pages need no CORS)"),
    Setting("KCO_SHOP_PAGES", "flag", None,
            "the demo shop at `/`, `/cart`, `/checkout`, `/confirmation`, `/terms`: `1` on, `0` off",
            "service", shown="on, off in production"),
    Setting("KCO_LONGPOLL_MAX_WAITERS", "whole number", None,
            "long-polls one process lets wait (beyond: 503 + `Retry-After`; docs/long-poll.md), counted "
            "together with the request bodies of browser tokens still arriving; `0` = no limit",
            "service", shown="threads − max(4, threads/8)"),
    Setting("KCO_BROWSER_RATE_LIMIT", "text", "30 per 10 seconds",
            "per-session limit on a browser token's writes and checkout loads (`limits` syntax); "
            "Klarna's callbacks and API-key calls are never throttled", "service"),
    Setting("KCO_RATE_LIMIT_STORAGE", "url", None,
            "where the throttles count: `redis://…` (shared by every instance), `memory://`, `file:PATH`",
            "service", shown="one SQLite file per host (callbacks/web/throttle.py)"),
    Setting("KCO_SUPPORT_AUTH_LIMIT", "text", "10 per minute",
            "wrong support-console sign-ins per client address (`limits` syntax); beyond, every request "
            "from that address is 429 until the window ends, the right password too", "service"),
    Setting("KCO_TRUSTED_PROXIES", "whole number", "0",
            "how many proxies in front of the service append the client's address to "
            "`X-Forwarded-For`; the throttles then count the address the nearest one saw. `0`: the "
            "connection's address (a client can write `X-Forwarded-For` itself)", "service"),
    Setting("KCO_BODY_TIMEOUT", "seconds", "10",
            "seconds a request body may take to arrive, per started 256 KiB of its Content-Length; "
            "later, the request is answered 408 and its connection closed (callbacks/web/deadline.py)",
            "service"),
    Setting("KCO_WEBHOOK_PRIVATE_URLS", "flag", "1",
            "`0`: refuse http:// and private, loopback or link-local webhook receivers; production "
            "always refuses them (docs/webhooks.md)", "service"),
    Setting("KCO_WEBHOOK_BACKOFF", "list", "0,5,300,1800,7200,18000,36000,36000",
            "seconds before each delivery attempt of a webhook message (docs/webhooks.md)", "service"),
    Setting("KCO_WEBHOOK_TIMEOUT", "seconds", "10", "seconds a webhook receiver has to answer", "service"),
    Setting("KCO_WEBHOOK_DISABLE_AFTER", "seconds", "432000",
            "seconds of failing deliveries after which an endpoint is disabled (5 days)", "service"),
    Setting("PROMETHEUS_MULTIPROC_DIR", "path", None,
            "an empty, writable directory: `/metrics` then sums every gunicorn worker", "service"),
    # Processes.
    Setting("PORT", "whole number", "8000", "the service's port (Procfile, scripts/run.sh); outside "
            "production, with `KCO_PUBLIC_URL` unset, `http://127.0.0.1:$PORT` is the public URL", "gunicorn"),
    Setting("WEB_CONCURRENCY", "whole number", "2", "gunicorn worker processes (Procfile, scripts/run.sh)",
            "gunicorn"),
    Setting("GUNICORN_THREADS", "whole number", "128",
            "threads per worker (Procfile, scripts/run.sh); gunicorn.conf.py sets it in every worker to "
            "the real figure, from which the long-poll limit is derived", "gunicorn"),
    Setting("GUNICORN_CONTROL_SOCKET", "path", None,
            "a path for gunicorn's `gunicornc` control socket (gunicorn.conf.py); unset, the socket is "
            "off, so the service, the sandbox and test servers never share gunicorn's one per-user "
            "default path", "gunicorn", shown="unset (off)"),
    Setting("MALLOC_ARENA_MAX", "whole number", "2", "glibc malloc arenas per worker (gunicorn.conf.py)",
            "gunicorn"),
    Setting("KCO_WORKER_METRICS_PORT", "whole number", None,
            "a port on which the webhook worker (`flask --app wsgi kco deliver`, the Procfile's `worker:` "
            "line) serves its own Prometheus metrics (docs/webhooks.md); same as `--metrics-port`",
            "gunicorn", shown="unset (not served)"),
    Setting("SANDBOX_PORT", "whole number", "8001",
            "the sandbox's port (scripts/run.sh starts it there unless `KLARNA_API_URL` points elsewhere); "
            "outside production, with `KLARNA_API_URL` unset, `http://127.0.0.1:$SANDBOX_PORT` is Klarna",
            "gunicorn"),
    Setting("KCO_RUN_FILE", "path", None,
            "where scripts/run.sh writes, while it runs, the addresses it started the service and the "
            "sandbox at; outside production `flask --app wsgi …` (`kco demo`, `kco replay`, …) and "
            "gunicorn take `KCO_PUBLIC_URL` and `KLARNA_API_URL` from it when neither they nor `PORT` "
            "and `SANDBOX_PORT` are set (callbacks/cli/where.py)", "gunicorn",
            shown="`instance/run.json`"),
    # The sandbox (sandbox/__init__.py DEFAULTS; tests/test_settings.py checks they agree).
    Setting("SANDBOX_USERNAME", "text", "sandbox", "HTTP Basic user of the sandbox's Klarna API", "sandbox"),
    Setting("SANDBOX_PASSWORD", "secret", "sandbox", "HTTP Basic password of the sandbox's Klarna API",
            "sandbox"),
    Setting("SANDBOX_ACCOUNTS", "list", None,
            "the sandbox's Klarna accounts, `username:password[:region]` comma-separated (region `eu`, "
            "`na` or `oc`; none: any currency). Each account sees only its own orders (another's are "
            "404) and its region refuses a currency it does not sell (docs/sandbox.md). scripts/run.sh "
            "sets it for the example shop's two accounts", "sandbox",
            shown="`SANDBOX_USERNAME:SANDBOX_PASSWORD` (any currency) and `sandbox-na:sandbox-na:na`"),
    Setting("SANDBOX_PUBLIC_URL", "url", None, "base URL of `Location` headers and the checkout frame",
            "sandbox", shown="the request's URL"),
    Setting("SANDBOX_TIME_SCALE", "seconds", "1000",
            "Klarna seconds per real second for push and notification schedules", "sandbox"),
    Setting("SANDBOX_CALLBACK_TIMEOUT", "seconds", "3.0",
            "seconds the shopper waits for `address_update`, `shipping_option_update`, `country_change`",
            "sandbox"),
    Setting("SANDBOX_VALIDATION_TIMEOUT", "seconds", "3.0", "seconds for `validation`; then silence approves",
            "sandbox"),
    Setting("SANDBOX_VALIDATION_REQUIRED_TIMEOUT", "seconds", "10.0",
            "seconds for `validation` when the order has `options.require_validate_callback_success`",
            "sandbox"),
    Setting("SANDBOX_PUSH_TIMEOUT", "seconds", "10.0", "seconds per push or notification attempt", "sandbox"),
    # The scripts.
    Setting("SANDBOX_FRAME_ANCESTORS", "list", None,
            "space-separated origins that may frame the sandbox's checkout iframe", "sandbox",
            shown="the origin of the order's `merchant_urls.checkout`"),
    Setting("PYTHON", "path", "python3", "the interpreter scripts/*.sh make `.venv` with when it is missing",
            "scripts"),
    Setting("KCO_TEST_WORKERS", "whole number", "4", "pytest-xdist workers of scripts/test.sh (`0`: serially)",
            "scripts"),
    Setting("KCO_CHROMIUM", "path", None, "the Chromium the browser tests and scripts/screenshots.py drive",
            "scripts", shown="`chromium` on `PATH`, else `/usr/bin/chromium`"),
    # The tests.
    Setting("KCO_TEST_PG_SERVER", "url", "postgresql+psycopg://postgres@127.0.0.1:5432",
            "the PostgreSQL server the tests and bench/ create their databases on", "tests"),
    Setting("KCO_TEST_PG_DATABASE", "text", "kco_test",
            "the tests' database name (each xdist worker adds `_gw0`, `_gw1`, …)", "tests"),
    Setting("KCO_TEST_PORT_RANGE", "text", None,
            "`LOW-HIGH`: the ports test servers take, where several test runs share one machine", "tests"),
    Setting("KCO_REQUIRE_POSTGRES", "flag", None, "`1`: PostgreSQL tests fail rather than skip (.ci/run sets it)",
            "tests"),
    Setting("KCO_REQUIRE_BROWSER", "flag", None, "`1`: browser tests fail rather than skip (.ci/run sets it)",
            "tests"),
    Setting("KCO_TEST_BROWSER_DATABASE", "choice", "sqlite",
            "the database of the service the browser tests start: `sqlite` (a file per server pair) or "
            "`postgresql` (a fresh database per pair on `KCO_TEST_PG_SERVER`, named after "
            "`KCO_TEST_PG_DATABASE`)", "tests"),
    Setting("KCO_RELIABILITY", "choice", None, "`full`: the reliability suite's full form (docs/reliability.md)",
            "tests", shown="the short form"),
    Setting("KCO_RELIABILITY_FIGURES", "path", None, "where the reliability suite writes its figures", "tests",
            shown="`instance/reliability-figures-{short,full}.json`"),
    Setting("PYTEST_XDIST_WORKER", "text", None, "set by pytest-xdist in each worker (`gw0`, …); read, never set",
            "tests"),
    Setting("BENCH_START", "whole number", "0", "set by bench/run.py for wrk's script: the first session number",
            "tests"),
)
BY_NAME = {s.name: s for s in SETTINGS}
assert len(BY_NAME) == len(SETTINGS), "a setting declared twice"
assert all(s.read_by in READERS for s in SETTINGS)


def declared(name: str) -> Setting:
    try:
        return BY_NAME[name]
    except KeyError:
        raise LookupError(f"{name} is not declared in settings.py: add it there, with its meaning") from None


def raw(name: str) -> str | None:
    """The variable's value, None when unset or blank (the declared default is not applied)."""
    declared(name)
    value = os.environ.get(name)
    return None if value is None or not value.strip() else value


def text(name: str) -> str | None:
    """The value, or the declared default when unset or blank."""
    value = raw(name)
    return BY_NAME[name].default if value is None else value


def markdown() -> str:
    lines = ["# Configuration", "",
             "<!-- Generated from settings.py by `flask --app wsgi kco settings --markdown > "
             "docs/configuration.md`; tests/test_settings.py fails when they differ. -->", "",
             "Every environment variable kco-sync reads, with its default. A blank value counts as unset. "
             "Outside production the WSGI entry point (wsgi.py) also reads a `.env` file in the working "
             "directory, then fills in `KCO_PUBLIC_URL` and `KLARNA_API_URL` from `PORT`, `SANDBOX_PORT` or "
             "`KCO_RUN_FILE` where they are unset. What production refuses is in docs/design.md §2.", ""]
    for reader, heading in READERS.items():
        lines += [f"## {heading}", "", "| variable | kind | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{s.name}` | {s.kind} | {s.default_text()} | {s.meaning} |"
                  for s in SETTINGS if s.read_by == reader]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
