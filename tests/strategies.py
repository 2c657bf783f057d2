"""Hypothesis strategies: random shops (docs/design.md §4) and random carts for the pricing rules (docs/design.md §5).

Shops are built directly from the `callbacks.rules.shop` dataclasses, so a strategy can produce
things a hand-written TOML file never would: odd VAT rates (2550, 810, 1, 9999, 10000),
US-style markets with a sales-tax table, shipping options with and without `free_over`, both
coupon kinds, prices anywhere up to Klarna's limit, and catalogues large enough to reach
Klarna's 1000-line limit.

The limits are written out here rather than imported from the code under test, so that a
wrong constant there is caught instead of copied.
"""
from __future__ import annotations

import random
from types import MappingProxyType

from hypothesis import strategies as st

from callbacks.rules.pricing import CartItem
from callbacks.rules.shop import Coupon, Market, Product, ShippingOption, Shop

KLARNA_MAX_AMOUNT = 100_000_000   # docs/klarna.md §4.2, §5.8
KLARNA_MAX_LINES = 1000
MAX_QUANTITY = 10_000             # what the storefront lets a shopper put in a cart line

CURRENCIES = ("SEK", "EUR", "USD", "NOK", "GBP")
VAT_COUNTRIES = ("SE", "NO", "FI", "DK", "DE", "AT", "NL", "GB", "CH", "FR", "PL", "ES")
US_STYLE_COUNTRIES = ("US", "CA", "PR")
TAX_CLASSES = ("standard", "reduced", "books", "zero")
US_REGIONS = ("CA", "NY", "TX", "WA", "OR", "FL")
SHIPPING_METHODS = ("PickUpStore", "Home", "BoxReg", "BoxUnreg", "PickUpPoint", "Own", "Postal",
                    "DHLPackstation", "Digital")
LANGUAGES = ("sv", "fi", "de", "en", "nb", "da", "nl", "fr")

# Real rates and the awkward ones: 25.5 % (FI), 8.1 % (CH), 2.6 %, 0, 1 and the 100 % extreme.
ODD_TAX_RATES = (0, 1, 260, 550, 600, 700, 810, 900, 1000, 1200, 1350, 1500, 1900, 2000, 2100,
                 2500, 2550, 9999, 10_000)


def _frozen(mapping) -> MappingProxyType:
    return MappingProxyType(dict(mapping))


tax_rates = st.one_of(st.sampled_from(ODD_TAX_RATES), st.integers(0, 10_000))


def amounts(low: int = 1, high: int = KLARNA_MAX_AMOUNT) -> st.SearchStrategy[int]:
    """Minor-unit amounts: mostly everyday prices, sometimes anything up to Klarna's limit,
    sometimes exactly at an edge."""
    edges = sorted({v for v in (low, low + 1, high, high - 1, KLARNA_MAX_AMOUNT // 2,
                                KLARNA_MAX_AMOUNT // 2 + 1, KLARNA_MAX_AMOUNT // 3,
                                KLARNA_MAX_AMOUNT // 10_000, KLARNA_MAX_AMOUNT // 10_000 + 1)
                    if low <= v <= high})
    everyday = st.integers(low, min(high, 10_000))
    return st.one_of(
        everyday, everyday, everyday,
        st.integers(low, min(high, 1_000_000)),
        st.integers(low, high),
        st.sampled_from(edges),
    )


prices = amounts(1)
shipping_prices = st.one_of(st.just(0), amounts(0, 20_000), amounts(0))
coupon_percents = st.one_of(st.sampled_from([1, 10, 25, 33, 50, 99, 100]), st.integers(1, 100))


# -- shipping ---------------------------------------------------------------------------------
@st.composite
def shipping_options(draw, option_id: str, market_currency: str,
                     currencies: tuple[str, ...] = CURRENCIES) -> ShippingOption:
    """One shipping option; usually priced in the market's currency, sometimes in others too,
    sometimes not in the market's currency at all (then it is never offered in it)."""
    price_currencies = set(draw(st.sets(st.sampled_from(currencies), max_size=3)))
    if draw(st.integers(0, 9)) or not price_currencies:
        price_currencies.add(market_currency)
    price = {c: draw(shipping_prices) for c in sorted(price_currencies)}
    free_over = {}
    if draw(st.booleans()):
        for c in sorted(price_currencies):
            if draw(st.integers(0, 3)):
                free_over[c] = draw(st.one_of(st.just(0), amounts(0, 200_000), amounts(0)))
    return ShippingOption(
        id=option_id,
        name=f"Shipping {option_id}",
        price=_frozen(price),
        free_over=_frozen(free_over),
        preselected=draw(st.integers(0, 3)) == 0,
        method=draw(st.none() | st.sampled_from(SHIPPING_METHODS)),
        description=draw(st.none() | st.just(f"About {option_id}")),
        names=_frozen(draw(st.dictionaries(st.sampled_from(LANGUAGES),
                                           st.just(f"{option_id} (localised)"), max_size=2))),
    )


@st.composite
def _shipping_table(draw, country: str, currency: str, currencies) -> tuple[ShippingOption, ...]:
    n = draw(st.integers(0, 4))
    return tuple(draw(shipping_options(f"{country.lower()}-ship-{i}", currency, currencies))
                 for i in range(n))


# -- markets ----------------------------------------------------------------------------------
@st.composite
def vat_markets(draw, country: str, tax_classes, currencies=CURRENCIES,
                currency: str | None = None) -> Market:
    """A market with gross prices and a VAT table covering every tax class of the shop."""
    currency = currency or draw(st.sampled_from(currencies))
    tax = {cls: draw(tax_rates) for cls in tax_classes}
    lang = draw(st.sampled_from(LANGUAGES))
    locales = tuple(dict.fromkeys((f"{lang}-{country}", f"en-{country}")))
    return Market(
        country=country, currency=currency, locales=locales, tax=_frozen(tax),
        shipping=draw(_shipping_table(country, currency, currencies)),
        shipping_tax_class=draw(st.sampled_from(sorted(tax_classes))),
        prices_include_tax=True, sales_tax=_frozen({}), tax_shipping=False,
    )


@st.composite
def us_markets(draw, country: str = "US", currencies=CURRENCIES,
               currency: str | None = None) -> Market:
    """A US-style market: net prices, one sales_tax line, rate by region (or default)."""
    currency = currency or draw(st.sampled_from(currencies))
    # Never 0: a lost default then taxes an unlisted state at 0 % and no test sees it.
    sales_tax = {"default": draw(tax_rates.filter(bool))}
    for region in draw(st.lists(st.sampled_from(US_REGIONS), unique=True, max_size=4)):
        sales_tax[region] = draw(tax_rates)
    return Market(
        country=country, currency=currency, locales=(f"en-{country}",), tax=_frozen({}),
        shipping=draw(_shipping_table(country, currency, currencies)),
        shipping_tax_class=None, prices_include_tax=False, sales_tax=_frozen(sales_tax),
        tax_shipping=draw(st.booleans()),
    )


# -- products and coupons ---------------------------------------------------------------------
@st.composite
def product_tables(draw, tax_classes, currencies, min_size: int = 1, max_size: int = 30,
                   missing_prices: bool = True,
                   max_price: int = KLARNA_MAX_AMOUNT) -> dict[str, Product]:
    """Products SKU-0000, SKU-0001, …; each priced in most of the shop's currencies.

    Large catalogues (hundreds of SKUs, for the 1000-line limit) are generated by a PRNG from
    one drawn seed instead of one draw per price, which keeps a 1000-product shop within
    Hypothesis's data budget and cheap to build."""
    n = draw(st.integers(min_size, max_size))
    products = {}
    if n <= 40:
        for i in range(n):
            sku = f"SKU-{i:04d}"
            curs = [c for c in currencies if not missing_prices or draw(st.integers(0, 19))]
            if not curs:
                curs = [currencies[0]]
            products[sku] = Product(
                sku=sku, name=f"Product {i}",
                type=draw(st.sampled_from(("physical", "physical", "digital"))),
                tax_class=draw(st.sampled_from(tax_classes)),
                prices=_frozen({c: draw(amounts(1, max_price)) for c in curs}),
                names=_frozen({"sv": f"Produkt {i}"}) if i % 3 == 0 else _frozen({}),
            )
        return products
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for i in range(n):
        sku = f"SKU-{i:04d}"
        curs = [c for c in currencies if not missing_prices or rnd.randrange(50)]
        if not curs:
            curs = [currencies[0]]

        def price():
            kind = rnd.randrange(10)
            if kind < 7:
                return rnd.randint(1, min(max_price, 100_000))
            if kind < 9:
                return rnd.randint(1, min(max_price, KLARNA_MAX_AMOUNT // 1000))
            return rnd.randint(1, max_price)

        products[sku] = Product(
            sku=sku, name=f"Product {i}", type=rnd.choice(("physical", "digital")),
            tax_class=rnd.choice(list(tax_classes)),
            prices=_frozen({c: price() for c in curs}),
        )
    return products


@st.composite
def coupon_tables(draw, currencies) -> dict[str, Coupon]:
    """Always one percent and one amount coupon, plus a few random ones."""
    coupons = {
        "PERCENT": Coupon("PERCENT", percent=draw(coupon_percents)),
        "AMOUNT": Coupon("AMOUNT", amount=_frozen(
            {c: draw(amounts(1)) for c in currencies if draw(st.integers(0, 4))})),
    }
    for i in range(draw(st.integers(0, 2))):
        code = f"EXTRA{i}"
        if draw(st.booleans()):
            coupons[code] = Coupon(code, percent=draw(coupon_percents))
        else:
            coupons[code] = Coupon(code, amount=_frozen(
                {c: draw(amounts(1)) for c in currencies if draw(st.booleans())}))
    return coupons


# -- shops ------------------------------------------------------------------------------------
@st.composite
def shops(draw, min_products: int = 1, max_products: int = 30,
          us_style: bool | None = None, everyday_prices: bool = False) -> Shop:
    """A random, internally consistent shop (what parse_shop would accept).

    us_style: True forces at least one US-style market, False forbids them, None lets chance
    decide. everyday_prices: every product priced in every currency at ≤ 1000.00, for carts
    that should reach the 1000-line limit rather than the amount limit."""
    currencies = tuple(draw(st.lists(st.sampled_from(CURRENCIES), unique=True, min_size=1,
                                      max_size=4)))
    tax_classes = tuple(draw(st.lists(st.sampled_from(TAX_CLASSES), unique=True, min_size=1)))
    vat_countries = draw(st.lists(st.sampled_from(VAT_COUNTRIES), unique=True,
                                  min_size=0 if us_style else 1, max_size=4))
    if us_style is False:
        us_countries = []
    else:
        us_countries = draw(st.lists(st.sampled_from(US_STYLE_COUNTRIES), unique=True,
                                     min_size=1 if us_style else 0, max_size=2))
    markets = {}
    for c in vat_countries:
        markets[c] = draw(vat_markets(c, tax_classes, currencies))
    for c in us_countries:
        markets[c] = draw(us_markets(c, currencies))
    products = draw(product_tables(tax_classes, currencies, min_products, max_products,
                                   missing_prices=not everyday_prices,
                                   max_price=100_000 if everyday_prices else KLARNA_MAX_AMOUNT))
    default = draw(st.sampled_from(sorted(markets)))
    return Shop(name="Random shop", default_country=default, markets=_frozen(markets),
                products=_frozen(products), coupons=_frozen(draw(coupon_tables(currencies))),
                source="<hypothesis>")


# -- carts ------------------------------------------------------------------------------------
quantities = st.one_of(st.integers(1, 3), st.integers(1, 20), st.integers(1, MAX_QUANTITY),
                       st.sampled_from([MAX_QUANTITY - 1, MAX_QUANTITY]))


def line_counts(min_lines: int = 1, max_lines: int = 1000) -> st.SearchStrategy[int]:
    """Cart lengths: mostly short carts; long ones (up to 1000 lines) less often, because they
    are expensive to generate and to price."""
    small = st.integers(min_lines, max(min_lines, min(max_lines, 10)))
    mid = st.integers(min_lines, max(min_lines, min(max_lines, 60)))
    big = st.integers(min_lines, max_lines)
    top = st.integers(max(min_lines, max_lines - 3), max_lines)
    return st.one_of(small, small, small, mid, big, top)


BULK_FROM = 60   # cart lines past this many come from a seeded PRNG, not one draw each


@st.composite
def carts(draw, shop: Shop, currency: str | None = None, min_lines: int = 1,
          max_lines: int = 1000, skus=None, quantity=quantities,
          bulk_max_quantity: int = MAX_QUANTITY) -> list[CartItem]:
    """1..max_lines cart lines over the shop's SKUs (repeats allowed: they merge).

    With `currency`, some quantities are chosen to land exactly at or just over Klarna's
    amount limit for that product's price (when such a quantity is ≤ 10 000).

    The first BULK_FROM lines are drawn one by one (so Hypothesis can shrink them); the rest of
    a long cart comes from a PRNG seeded by one draw, with quantities mostly 1–3, sometimes up
    to 20, sometimes up to `bulk_max_quantity`. That keeps a 1000-line cart cheap to generate.
    """
    skus = sorted(skus if skus is not None else shop.products)
    n = draw(line_counts(min_lines, max_lines))

    def near_limit(sku: str) -> list[int]:
        price = shop.products[sku].prices.get(currency) if sku in shop.products else None
        if not price:
            return []
        return [q for q in (KLARNA_MAX_AMOUNT // price, KLARNA_MAX_AMOUNT // price + 1)
                if 1 <= q <= MAX_QUANTITY]

    items = []
    for _ in range(min(n, BULK_FROM)):
        sku = draw(st.sampled_from(skus))
        qty = draw(quantity)
        if currency is not None and draw(st.integers(0, 19)) == 0:
            near = near_limit(sku)
            if near:
                qty = draw(st.sampled_from(near))
        items.append(CartItem(sku, qty))
    if n > BULK_FROM:
        rnd = random.Random(draw(st.integers(0, 2**32)))
        ones = draw(st.booleans())     # half of the long carts: quantity 1 on every bulk line
        for _ in range(n - BULK_FROM):
            sku = rnd.choice(skus)
            kind = rnd.randrange(20)
            if ones:
                qty = 1
            elif kind < 14:
                qty = rnd.randint(1, 3)
            elif kind < 18:
                qty = rnd.randint(1, min(20, bulk_max_quantity))
            elif kind < 19 or currency is None or not near_limit(sku):
                qty = rnd.randint(1, bulk_max_quantity)
            else:
                qty = rnd.choice(near_limit(sku))
            items.append(CartItem(sku, qty))
    return items


@st.composite
def distinct_carts(draw, shop: Shop, min_lines: int, max_lines: int,
                   quantity=None) -> list[CartItem]:
    """A cart of distinct SKUs (one order line each), for the 1000-line limit."""
    quantity = quantity if quantity is not None else st.integers(1, 3)
    skus = sorted(shop.products)
    n = draw(st.integers(min(min_lines, len(skus)), min(max_lines, len(skus))))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    chosen = rnd.sample(skus, n)
    return [CartItem(s, draw(quantity) if i < 5 else rnd.randint(1, 3))
            for i, s in enumerate(chosen)]
