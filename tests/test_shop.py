"""The shop file (docs/design.md §4): the shipped example loads as documented, and a wrong file stops
start-up with a message naming the file, the dotted key and the problem."""
from __future__ import annotations

import textwrap

import pytest

from callbacks.rules.shop import EXAMPLE_SHOP, Shop, ShopFileError, load_shop

SHOP = load_shop()


# -- the example shop -----------------------------------------------------------------------
def test_example_shop_loads_from_the_default_path():
    assert isinstance(SHOP, Shop)
    assert SHOP.source == str(EXAMPLE_SHOP)
    assert load_shop(EXAMPLE_SHOP) == SHOP
    assert SHOP.default_country == "SE"
    assert SHOP.default_market.currency == "SEK"


@pytest.mark.parametrize("country, currency", [
    ("SE", "SEK"), ("NO", "NOK"), ("FI", "EUR"), ("DK", "DKK"), ("DE", "EUR"), ("AT", "EUR"),
    ("NL", "EUR"), ("GB", "GBP"), ("CH", "CHF"), ("US", "USD"),
])
def test_example_markets_and_currencies(country, currency):
    market = SHOP.markets[country]
    assert market.country == country
    assert market.currency == currency
    assert market.locales and all(loc.split("-")[1] == country for loc in market.locales)
    assert market.shipping, f"{country} offers no shipping"
    assert any(currency in option.price for option in market.shipping)
    assert sum(option.preselected for option in market.shipping) <= 1
    if country == "US":
        assert market.prices_include_tax is False
        assert market.sales_tax_rate("CA") == 725 and market.sales_tax_rate("ny") == 400
        assert market.sales_tax_rate(None) == market.sales_tax_rate("ZZ") == 0
        assert market.tax_shipping is True
    else:
        assert market.prices_include_tax is True
        assert market.shipping_tax_class in market.tax
        assert all(0 <= rate <= 10_000 for rate in market.tax.values())


def test_example_vat_rates():
    assert dict(SHOP.markets["SE"].tax) == {"standard": 2500, "reduced": 600, "books": 600}
    assert SHOP.markets["FI"].tax["standard"] == 2550
    assert SHOP.markets["CH"].tax["standard"] == 810


def test_example_products():
    products = SHOP.products
    assert len(products) >= 8
    classes = {p.tax_class for p in products.values()}
    assert len(classes) >= 3 and {"standard", "reduced", "books"} <= classes
    assert any(p.type == "digital" for p in products.values())
    for sku, product in products.items():
        assert product.sku == sku
        for currency, price in product.prices.items():
            assert isinstance(price, int) and 0 < price <= 100_000_000, (sku, currency)
        for market in SHOP.markets.values():
            if market.prices_include_tax:
                assert product.tax_class in market.tax, (sku, market.country)
    # The deliberate gaps the pricing tests rely on.
    assert "USD" not in products["CRISPBREAD-RYE-520"].prices
    assert "CHF" not in products["HONEY-WILDFLOWER-350"].prices
    assert products["TSHIRT-BLUE-M"].display_name("sv") == "Blå t-shirt, M"
    assert products["TSHIRT-BLUE-M"].display_name("xx") == "Blue T-shirt, M"
    assert products["MUG-ENAMEL"].stock == 0 and products["HOODIE-GREY-L"].stock is None


def test_example_coupons_of_both_kinds():
    coupons = SHOP.coupons.values()
    assert any(c.percent is not None and not c.amount for c in coupons)
    assert any(c.percent is None and c.amount for c in coupons)
    assert SHOP.coupons["SUMMER10"].percent == 10
    assert SHOP.coupons["WELCOME50"].amount["SEK"] == 5000


def test_example_shop_is_immutable():
    with pytest.raises(TypeError):
        SHOP.markets["SE"] = SHOP.markets["NO"]          # type: ignore[index]
    with pytest.raises(TypeError):
        SHOP.products["MUG-ENAMEL"].prices["SEK"] = 1     # type: ignore[index]


# -- broken shop files ----------------------------------------------------------------------
BASE = textwrap.dedent('''\
    [shop]
    name = "Broken-on-purpose"
    default_country = "SE"

    [markets.SE]
    currency = "SEK"
    locales = ["sv-SE", "en-SE"]
    tax = { standard = 2500, reduced = 1200 }
    shipping_tax_class = "standard"

    [[markets.SE.shipping]]
    id = "home"
    name = "Home delivery"
    price = { SEK = 4900 }
    free_over = { SEK = 50000 }
    preselected = true

    [markets.US]
    currency = "USD"
    locales = ["en-US"]
    prices_include_tax = false
    sales_tax = { default = 0, CA = 725 }

    [products."TSHIRT"]
    name = "T-shirt"
    tax_class = "standard"
    prices = { SEK = 19900, USD = 2200 }

    [products."TEA"]
    name = "Tea"
    tax_class = "reduced"
    prices = { SEK = 8900 }

    [coupons.TEN]
    percent = 10
''')

# (case, text to replace in BASE, replacement, dotted key, words the problem must contain)
BROKEN = [
    ("unknown tax class", 'tax_class = "reduced"', 'tax_class = "food"',
     'products."TEA".tax_class', "'food'"),
    ("price zero", "prices = { SEK = 8900 }", "prices = { SEK = 0 }",
     'products."TEA".prices.SEK', "positive integer"),
    ("price negative", "prices = { SEK = 8900 }", "prices = { SEK = -100 }",
     'products."TEA".prices.SEK', "-100"),
    ("price float", "prices = { SEK = 8900 }", "prices = { SEK = 89.00 }",
     'products."TEA".prices.SEK', "89.0"),
    ("price string", "prices = { SEK = 8900 }", 'prices = { SEK = "8900" }',
     'products."TEA".prices.SEK', "'8900'"),
    ("price boolean", "prices = { SEK = 8900 }", "prices = { SEK = true }",
     'products."TEA".prices.SEK', "True"),
    ("price over Klarna's limit", "prices = { SEK = 8900 }", "prices = { SEK = 100000001 }",
     'products."TEA".prices.SEK', "100000000"),
    ("no prices at all", "prices = { SEK = 8900 }", "prices = {}",
     'products."TEA".prices', "no price"),
    ("lower-case price currency", "prices = { SEK = 8900 }", "prices = { sek = 8900 }",
     'products."TEA".prices.sek', "ISO 4217"),
    ("shipping option without price", "price = { SEK = 4900 }\n", "",
     "markets.SE.shipping[0].price", "needs a price"),
    ("shipping price negative", "price = { SEK = 4900 }", "price = { SEK = -1 }",
     "markets.SE.shipping[0].price.SEK", "-1"),
    ("shipping method unknown", "preselected = true", 'preselected = true\nmethod = "Drone"',
     "markets.SE.shipping[0].method", "'Drone'"),
    ("locale with underscore", '"sv-SE", "en-SE"', '"sv_SE", "en-SE"',
     "markets.SE.locales[0]", "'sv_SE'"),
    ("locale without country", '"sv-SE", "en-SE"', '"sv", "en-SE"',
     "markets.SE.locales[0]", "'sv'"),
    ("locale with trailing newline", '"sv-SE", "en-SE"', '"sv-SE\\n", "en-SE"',
     "markets.SE.locales[0]", "sv-SE"),
    ("no locales", 'locales = ["sv-SE", "en-SE"]', "locales = []",
     "markets.SE.locales", "non-empty list"),
    ("lower-case currency", 'currency = "SEK"', 'currency = "sek"',
     "markets.SE.currency", "'sek'"),
    ("currency with trailing newline", 'currency = "SEK"', 'currency = "SEK\\n"',
     "markets.SE.currency", "ISO 4217"),
    ("tax rate over 100 %", "standard = 2500", "standard = 25000",
     "markets.SE.tax.standard", "25000"),
    ("tax rate as percent float", "standard = 2500", "standard = 25.0",
     "markets.SE.tax.standard", "25.0"),
    ("shipping tax class unknown", 'shipping_tax_class = "standard"', 'shipping_tax_class = "std"',
     "markets.SE.shipping_tax_class", "'std'"),
    ("lower-case market country", "[markets.US]", "[markets.us]",
     "markets.us", "upper-case"),
    ("missing default_country market", 'default_country = "SE"', 'default_country = "FI"',
     "shop.default_country", "[markets.FI]"),
    ("coupon with percent and amount", "percent = 10", "percent = 10\namount = { SEK = 500 }",
     "coupons.TEN", "exactly one of percent or amount"),
    ("coupon with neither", "percent = 10", "",
     "coupons.TEN", "exactly one of percent or amount"),
    ("coupon percent over 100", "percent = 10", "percent = 110",
     "coupons.TEN.percent", "110"),
    ("unknown key in a product", 'name = "Tea"', 'name = "Tea"\ncolour = "green"',
     'products."TEA".colour', "unknown key"),
    ("unknown key in a market", 'shipping_tax_class = "standard"',
     'shipping_tax_class = "standard"\nvat = 25', "markets.SE.vat", "unknown key"),
    ("unknown top-level key", "[shop]", "currency = \"SEK\"\n[shop]",
     "currency", "unknown key"),
    ("product type unknown", 'name = "Tea"', 'name = "Tea"\ntype = "service"',
     'products."TEA".type', "'service'"),
    ("SKU with a space", '[products."TEA"]', '[products."GREEN TEA"]',
     'products."GREEN TEA"', "without spaces"),
    ("SKU with trailing newline", '[products."TEA"]', '[products."TEA\\n"]',
     'products."TEA\n"', "without spaces"),
    ("duplicate shipping id", "[markets.US]",
     '[[markets.SE.shipping]]\nid = "home"\nname = "Again"\nprice = { SEK = 1 }\n\n[markets.US]',
     "markets.SE.shipping[1].id", "used twice"),
    ("sales tax rate negative", "CA = 725", "CA = -725",
     "markets.US.sales_tax.CA", "-725"),
    ("shipping name's language not a code", 'name = "Home delivery"',
     'name = "Home delivery"\nnames = { swedish = "Hemleverans" }',
     "markets.SE.shipping[0].names.swedish", "two-letter language code"),
    ("shipping name by language empty", 'name = "Home delivery"',
     'name = "Home delivery"\nnames = { sv = "" }',
     "markets.SE.shipping[0].names.sv", "non-empty string"),
    ("shipping description by language not a string", 'name = "Home delivery"',
     'name = "Home delivery"\ndescription = "1–3 days."\ndescriptions = { sv = 3 }',
     "markets.SE.shipping[0].descriptions.sv", "non-empty string"),
    ("shipping descriptions without a description", 'name = "Home delivery"',
     'name = "Home delivery"\ndescriptions = { sv = "1–3 dagar." }',
     "markets.SE.shipping[0].descriptions", "need a description"),
    ("shipping descriptions not a table", 'name = "Home delivery"',
     'name = "Home delivery"\ndescription = "1–3 days."\ndescriptions = "1–3 dagar."',
     "markets.SE.shipping[0].descriptions", "table"),
]


@pytest.mark.parametrize("case, old, new, key, problem", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_shop_file(tmp_path, case, old, new, key, problem):
    assert BASE.count(old) == 1, f"test table out of date: {old!r} is not once in BASE"
    path = tmp_path / "shop.toml"
    path.write_text(BASE.replace(old, new), encoding="utf-8")
    with pytest.raises(ShopFileError) as info:
        load_shop(path)
    err = info.value
    message = str(err)
    assert str(path) in message
    assert err.path == str(path)
    assert err.key == key
    assert f": {key}: " in message
    assert problem in message, message


def test_base_of_the_broken_table_is_valid(tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text(BASE, encoding="utf-8")
    shop = load_shop(path)
    assert sorted(shop.markets) == ["SE", "US"] and sorted(shop.products) == ["TEA", "TSHIRT"]
    assert shop.source == str(path)


def test_invalid_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(BASE.replace('name = "Tea"', 'name = "Tea'), encoding="utf-8")
    with pytest.raises(ShopFileError) as info:
        load_shop(path)
    assert str(path) in str(info.value)
    assert info.value.key == "(file)"
    assert "not valid TOML" in str(info.value)
    assert "line" in str(info.value)          # tomllib's position, so the typo can be found


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "shop.toml"
    with pytest.raises(ShopFileError) as info:
        load_shop(path)
    assert str(path) in str(info.value)
    assert info.value.key == "(file)"
    assert "no such file" in str(info.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(BASE.replace("T-shirt", "T-tröja").encode("latin-1"))
    with pytest.raises(ShopFileError) as info:
        load_shop(path)
    assert str(path) in str(info.value) and "UTF-8" in str(info.value)


def test_shop_file_error_is_a_value_error():
    err = ShopFileError("/x/shop.toml", "markets.SE.currency", "'sek' is not an ISO code")
    assert isinstance(err, ValueError)
    assert str(err) == "/x/shop.toml: markets.SE.currency: 'sek' is not an ISO code"


@pytest.mark.parametrize("spelling", ["default", "DEFAULT", "Default"])
def test_us_sales_tax_default_applies_to_states_not_listed(tmp_path, spelling):
    """A regression: the loader upper-cased `default` and the lookup asked for lower case."""
    path = tmp_path / "shop.toml"
    path.write_text(EXAMPLE_SHOP.read_text(encoding="utf-8").replace(
        "sales_tax = { default = 0, CA = 725,", f"sales_tax = {{ {spelling} = 500, ca = 725,", 1),
        encoding="utf-8")
    us = load_shop(path).markets["US"]
    assert [us.sales_tax_rate(r) for r in ("VT", "vt", None, "", "CA", "ca")] == [500, 500, 500, 500, 725, 725]


def test_shipping_names_and_descriptions_by_language(tmp_path):
    """A shipping option speaks the shopper's language where the shop file has it, and its
    default name and description everywhere else (a shop file without them is unchanged)."""
    path = tmp_path / "shop.toml"
    path.write_text(BASE.replace('name = "Home delivery"', 'name = "Home delivery"\n'
                                 'names = { sv = "Hemleverans" }\ndescription = "1–3 working days."\n'
                                 'descriptions = { sv = "1–3 arbetsdagar." }'), encoding="utf-8")
    option = load_shop(path).markets["SE"].shipping[0]
    assert (option.display_name("sv"), option.display_description("sv")) == ("Hemleverans", "1–3 arbetsdagar.")
    assert (option.display_name("en"), option.display_description("en")) == ("Home delivery", "1–3 working days.")
    plain = load_shop(_write(tmp_path / "plain.toml", BASE)).markets["SE"].shipping[0]
    assert (plain.display_name("sv"), plain.display_description("sv")) == ("Home delivery", None)


def test_example_shipping_speaks_its_markets_languages():
    home = next(o for o in SHOP.markets["SE"].shipping if o.id == "postnord-home")
    assert home.display_name("sv") == "PostNord hemleverans"
    assert home.display_description("sv").startswith("Levereras")
    dhl = next(o for o in SHOP.markets["DE"].shipping if o.id == "dhl-paket")
    assert dhl.display_description("de") == "Lieferung nach Hause, 1–2 Werktage."
    assert dhl.display_description("en") == "Home delivery, 1–2 working days."


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path
