"""Klarna's API regions: which host serves which region, and which currencies a region sells
(docs/klarna.md §6.1). Pure facts, used by the shop file's checks (rules/shop.py), by the
account resolution (callbacks/klarna/accounts.py) and by the sandbox, which refuses an order
in a currency its account's region cannot sell, as Klarna does.

Europe, North America and Oceania are separate API hosts with separate credentials: an account
(a Klarna merchant id) lives in one region, and its orders can only be in that region's
currencies. A host that is not one of Klarna's (the sandbox, a test stand-in, a proxy) has no
region of its own: its account sells whatever the shop file's `region` says, or anything.
"""
from __future__ import annotations

from urllib.parse import urlsplit

EU, NA, OC = "eu", "na", "oc"
NAMES = {EU: "Europe", NA: "North America", OC: "Oceania"}

# Klarna's live and playground base URLs [S28].
HOSTS = {
    "api.klarna.com": EU, "api.playground.klarna.com": EU,
    "api-na.klarna.com": NA, "api-na.playground.klarna.com": NA,
    "api-oc.klarna.com": OC, "api-oc.playground.klarna.com": OC,
}

# The purchase currencies of each region's countries: Klarna's list of supported transaction
# currencies [S66] split by the regional endpoint Klarna's country table is served from [S67]
# (CA, MX, US on -na; AU, NZ on -oc; the rest on the European host), with the local currency of
# each country [S46]; RON and HUF are European markets [S68].
CURRENCIES: dict[str, frozenset[str]] = {
    EU: frozenset({"EUR", "SEK", "NOK", "DKK", "GBP", "CHF", "PLN", "CZK", "RON", "HUF"}),
    NA: frozenset({"USD", "CAD", "MXN"}),
    OC: frozenset({"AUD", "NZD"}),
}


def of_url(url: str | None) -> str | None:
    """The region of a Klarna API base URL; None for any other host."""
    if not url:
        return None
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return None
    return HOSTS.get(host)


def twin(url: str, region: str | None) -> str:
    """Klarna's host of `region` in the same environment (live or playground) as Klarna's host
    `url`: an account without an api_url of its own is reached there, so one KLARNA_API_URL
    serves a shop's European and North American accounts alike. Any other URL (the sandbox,
    a stand-in), or no region, is returned as it is."""
    if region is None or of_url(url) is None:
        return url
    parts = urlsplit(url.strip())
    playground = ".playground." in f".{(parts.hostname or '').lower()}"
    host = next(h for h, r in HOSTS.items() if r == region and ("playground" in h) == playground)
    return f"https://{host}"


def sells(region: str | None, currency: str) -> bool:
    """Whether an account of `region` can sell in `currency` (None: no region known, any)."""
    return region is None or currency.upper() in CURRENCIES[region]


def name(region: str) -> str:
    return NAMES.get(region, region)


def currencies(region: str) -> str:
    return ", ".join(sorted(CURRENCIES[region]))
