"""Tax country and locale choice (docs/design.md §3 "tax country", docs/design.md §5.7), on the example shop."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callbacks.rules.markets import country, language, market_for_currency, normalize_locale, pick_locale, tax_country
from callbacks.rules.shop import load_shop, parse_shop

SHOP = load_shop()
SERVED = sorted(SHOP.markets)
NOT_SERVED = ["JP", "BR", "ZA", "IS", "PL"]


# -- tax country ----------------------------------------------------------------------------
@pytest.mark.parametrize("shipping, billing, purchase, expected", [
    ("FI", "SE", "SE", "FI"),       # shipping known and served: shipping
    ("FI", None, "SE", "FI"),
    ("DE", "AT", "SE", "DE"),
    ("JP", "NO", "SE", "NO"),       # shipping not served: billing, which has a market
    (None, "NO", "SE", "NO"),       # shipping unknown: billing
    ("JP", "BR", "SE", "SE"),       # neither served: the purchase country
    (None, None, "DK", "DK"),
    ("", "", "GB", "GB"),           # empty strings count as unknown
    ("fi", "se", "se", "FI"),       # lower case, as in Klarna's own read example
    ("jp", "no", "se", "NO"),
    ("jp", "br", "se", "SE"),
    ("Us", None, "Se", "US"),
])
def test_tax_country(shipping, billing, purchase, expected):
    assert tax_country(SHOP, shipping, billing, purchase) == expected


codes = st.sampled_from(SERVED + NOT_SERVED)
cased = st.tuples(codes, st.sampled_from([str.upper, str.lower, str.title])).map(lambda t: t[1](t[0]))


@settings(max_examples=300, deadline=None)
@given(shipping=st.none() | cased, billing=st.none() | cased, purchase=cased)
def test_tax_country_property(shipping, billing, purchase):
    got = tax_country(SHOP, shipping, billing, purchase)
    up = lambda c: c.upper() if c else None  # noqa: E731
    if up(shipping) in SHOP.markets:
        assert got == up(shipping)
    elif up(billing) in SHOP.markets:
        assert got == up(billing)
    else:
        assert got == purchase.upper()
    assert got == got.upper()


def test_country_normalisation():
    assert country("se") == "SE"
    assert country(" gb ") == "GB"
    assert country("") is None and country(None) is None and country("  ") is None


# -- locale (docs/design.md §5.7) --------------------------------------------------------------------------
@pytest.mark.parametrize("current, target, expected", [
    ("sv-SE", "FI", "sv-FI"),       # a Swede moving to Finland keeps Swedish
    ("de-DE", "AT", "de-AT"),
    ("de-AT", "DE", "de-DE"),
    ("en-GB", "CH", "en-CH"),       # CH lists en-CH
    ("fr-FR", "CH", "fr-CH"),
    ("it-IT", "CH", "it-CH"),
    ("en-SE", "FI", "en-FI"),
    ("en-US", "GB", "en-GB"),
    ("sv-SE", "DE", "de-DE"),       # language not spoken in the market: its default locale
    ("fi-FI", "SE", "sv-SE"),
    ("nb-NO", "US", "en-US"),
    ("da-DK", "CH", "de-CH"),
    ("fi-FI", "FI", "fi-FI"),       # same market: unchanged
    ("sv-FI", "SE", "sv-SE"),
    ("sv-se", "FI", "sv-FI"),       # any case
    ("SV-SE", "FI", "sv-FI"),
    (None, "FI", "fi-FI"),          # no current locale: the default
    ("", "AT", "de-AT"),
])
def test_pick_locale_example_shop(current, target, expected):
    assert pick_locale(SHOP.markets[target], current) == expected


def _shop_with(locales_by_country):
    markets = {c: {"currency": "EUR", "locales": locs, "tax": {"standard": 2000},
                   "shipping_tax_class": "standard"}
               for c, locs in locales_by_country.items()}
    return parse_shop({
        "shop": {"name": "Locales", "default_country": next(iter(locales_by_country))},
        "markets": markets,
        "products": {"P": {"name": "P", "tax_class": "standard", "prices": {"EUR": 100}}},
    })


def test_pick_locale_falls_back_to_any_locale_of_the_language():
    # LU lists no de-LU: a German speaker gets the market's German locale, not its default.
    shop = _shop_with({"LU": ["fr-LU", "de-DE", "en-GB"], "BE": ["nl-BE", "fr-BE"]})
    assert pick_locale(shop.markets["LU"], "de-AT") == "de-DE"
    assert pick_locale(shop.markets["LU"], "en-US") == "en-GB"
    assert pick_locale(shop.markets["LU"], "fr-FR") == "fr-LU"
    assert pick_locale(shop.markets["LU"], "sv-SE") == "fr-LU"
    assert pick_locale(shop.markets["BE"], "fr-LU") == "fr-BE"
    assert pick_locale(shop.markets["BE"], "de-DE") == "nl-BE"


@settings(max_examples=300, deadline=None)
@given(target=st.sampled_from(SERVED),
       lang=st.sampled_from(["sv", "fi", "de", "en", "fr", "it", "nb", "da", "nl", "pl", "zh"]),
       region=st.sampled_from(SERVED + NOT_SERVED),
       case=st.sampled_from([str, str.lower, str.upper]))
def test_pick_locale_property(target, lang, region, case):
    market = SHOP.markets[target]
    got = pick_locale(market, case(f"{lang}-{region}"))
    assert got in market.locales
    same_language = [loc for loc in market.locales if loc.split("-")[0] == lang]
    if f"{lang}-{target}" in market.locales:
        assert got == f"{lang}-{target}"
    elif same_language:
        assert got == same_language[0]
    else:
        assert got == market.locales[0]


def test_language_and_locale_helpers():
    assert language("sv-SE") == "sv" and language("SV-se") == "sv"
    assert language(None) == "" and language("") == ""
    assert normalize_locale("sv-se") == "sv-SE"
    assert normalize_locale("EN-gb") == "en-GB"
    assert normalize_locale(None) is None


def test_market_for_currency():
    assert market_for_currency(SHOP, "SEK").country == "SE"
    assert market_for_currency(SHOP, "eur", preferred="at").country == "AT"
    assert market_for_currency(SHOP, "EUR", preferred="SE").country == "FI"   # SE is SEK
    assert market_for_currency(SHOP, "USD").country == "US"
    assert market_for_currency(SHOP, "JPY") is None
