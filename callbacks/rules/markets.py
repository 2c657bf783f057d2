"""Which market's rules apply: tax country and locale choice (docs/design.md §3, §5.7).

Klarna sends country codes in either case ("gb" in its own read example), so every function
here accepts both and answers in upper case.
"""
from __future__ import annotations

from callbacks.rules.shop import Market, Shop


def country(code: str | None) -> str | None:
    return code.strip().upper() if isinstance(code, str) and code.strip() else None


def language(locale: str | None) -> str:
    return (locale or "").split("-")[0].lower()


def tax_country(shop: Shop, shipping_country: str | None, billing_country: str | None,
                purchase_country: str) -> str:
    """The shipping country when known and served, else the billing country when it has a
    market, else the purchase country."""
    for candidate in (shipping_country, billing_country):
        found = country(candidate)
        if found and shop.market(found):
            return found
    return country(purchase_country) or purchase_country


def pick_locale(market: Market, current_locale: str | None) -> str:
    """Keep the shopper's language when the new market speaks it (docs/design.md §5.7), so that a Swede who
    changes billing country to Finland keeps Swedish (sv-FI) rather than being switched to
    Finnish."""
    lang = language(current_locale)
    exact = f"{lang}-{market.country}"
    if exact in market.locales:
        return exact
    for loc in market.locales:
        if language(loc) == lang:
            return loc
    return market.default_locale


def normalize_locale(locale: str | None) -> str | None:
    """'sv-se' → 'sv-SE'; Klarna's pattern allows any case, our markets store one."""
    if not locale:
        return None
    parts = locale.split("-")
    return "-".join([parts[0].lower(), *(p.upper() for p in parts[1:])])


def market_for_currency(shop: Shop, currency: str, preferred: str | None = None) -> Market | None:
    """The market an unknown session was most likely in: the preferred country's market when it
    uses this currency, else the shop's default, else the first market with that currency."""
    currency = (currency or "").upper()
    for candidate in (shop.market(preferred), shop.default_market):
        if candidate and candidate.currency == currency:
            return candidate
    return next((m for m in shop.markets.values() if m.currency == currency), None)
