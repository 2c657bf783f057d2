"""Shopper-facing texts in the order's language, from gettext catalogs: Klarna shows our
error messages and shipping names to the shopper inside the checkout, in the checkout's locale.

The rules name a message (rules/texts.py); this renders it in a locale: the merchant's override
from the shop file first (`[texts.<id>]`, any language the merchant writes), then the catalog in
callbacks/translations/ (Flask-Babel), then English. Klarna locales are language-REGION
(sv-FI, de-AT, fr-CH): only the language part chooses the catalog, and Klarna's Norwegian
codes `no` and `nn` read the Bokmål catalog, the written standard of Norwegian shops.
Country codes in a message are shown as the country's name in that language (Babel's CLDR data):
"Åland", not "AX".
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision
from flask import Flask, current_app, g
from flask_babel import Babel, force_locale, gettext

from callbacks.rules import markets
from callbacks.rules.texts import MESSAGES, Text

LANGUAGES = ("en", "sv", "nb", "da", "fi", "de", "nl", "fr")
FALLBACK = "en"
ALIASES = {"no": "nb", "nn": "nb"}


def wanted(locale: str | None) -> str:
    """The language a locale asks for, whether or not a catalog exists: 'sv-FI' → 'sv'."""
    lang = markets.language(locale)
    return ALIASES.get(lang, lang)


def catalog_language(locale: str | None) -> str:
    """The catalog that serves a locale: its language when shipped, else English."""
    lang = wanted(locale)
    return lang if lang in LANGUAGES else FALLBACK


def first_locale(*candidates: str | None) -> str | None:
    return next((c for c in candidates if c), None)


def render(text: Text, locale: str | None, overrides: Mapping[str, Mapping[str, str]]) -> str:
    """One message in `locale`. Needs an app context (the catalogs are the app's)."""
    lang, served = wanted(locale), catalog_language(locale)
    own = overrides.get(text.id, {})
    if lang in own:
        return own[lang] % _params(text, lang)
    params = _params(text, served)
    if served in own:
        return own[served] % params
    with force_locale(served):
        return str(gettext(MESSAGES[text.id], **params) if params else gettext(MESSAGES[text.id]))


def render_all(texts: Iterable[Text], locale: str | None,
               overrides: Mapping[str, Mapping[str, str]]) -> str:
    return " ".join(render(t, locale, overrides) for t in texts)


def _params(text: Text, lang: str) -> dict[str, Any]:
    return {k: _shown(k, v, lang) for k, v in text.params.items()}


def _shown(name: str, value: Any, lang: str) -> Any:
    if name == "country" and isinstance(value, str):
        try:
            names = Locale.parse(lang).territories
        except (ValueError, UnknownLocaleError):  # a merchant's language CLDR does not know
            names = Locale.parse(FALLBACK).territories
        return names.get(value.upper(), value)
    return value


def page_language() -> str:
    """The demo pages' language: set per request by the shop front from the shopper's market."""
    return str(g.get("kco_language", FALLBACK))


def money(minor: int | None, currency: str | None, country: str | None = None) -> str:
    """An amount in minor units as the market's locale writes it ("199,00 kr", "59,90 €"), for
    pages rendered on the server (the support console). The locale is the country's market's
    default; a country the shop does not sell in is written in English."""
    if minor is None or not currency:
        return ""
    market = current_app.extensions["kco"].shop.market(country) if country else None
    locale = (market.default_locale if market else FALLBACK).replace("-", "_")
    digits = get_currency_precision(currency)
    try:
        return format_currency(Decimal(minor).scaleb(-digits), currency, locale=locale)
    except (ValueError, UnknownLocaleError):
        return format_currency(Decimal(minor).scaleb(-digits), currency, locale=FALLBACK)


def init_app(app: Flask) -> None:
    Babel(app, default_locale=FALLBACK, locale_selector=page_language)
    app.jinja_env.filters["money"] = money
