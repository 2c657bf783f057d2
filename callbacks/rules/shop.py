"""The shop file (docs/design.md §4): markets, products and coupons, loaded once at start-up.

Everything here is immutable so that a loaded shop can be shared by every request and thread
without copying. A wrong shop file must stop start-up with a message that names the file, the
key and the problem, because a typo in a tax table would otherwise surface as wrong VAT in a
shopper's checkout hours later.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlsplit

from callbacks.rules import ksa, options, regions
from callbacks.rules.amounts import MAX_AMOUNT
from callbacks.rules.texts import MESSAGES, PLACEHOLDER, parameters

EXAMPLE_SHOP = Path(__file__).parent / "shops" / "example.toml"

# Klarna's own limits (docs/klarna.md §4.2, §5.8).
MAX_TAX_RATE = 10_000

COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
LOCALE_RE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
SKU_RE = re.compile(r"^[^\s]{1,255}$")
SHIPPING_METHODS = frozenset(
    "PickUpStore Home BoxReg BoxUnreg PickUpPoint Own Postal DHLPackstation Digital".split()
)
PRODUCT_TYPES = frozenset({"physical", "digital"})
ACCOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ShopFileError(ValueError):
    """A shop file that cannot be served; the message names file, key and problem."""

    def __init__(self, path: Path | str, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}")


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ShippingOption:
    id: str
    name: str
    price: Mapping[str, int]  # gross, by purchase currency
    free_over: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    preselected: bool = False
    method: str | None = None
    description: str | None = None
    names: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    descriptions: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def display_name(self, language: str) -> str:
        return self.names.get(language, self.name)

    def display_description(self, language: str) -> str | None:
        return self.descriptions.get(language, self.description)


DEFAULT_SALES_TAX = "default"  # the sales_tax key for the states a shop file does not list


@dataclass(frozen=True)
class Market:
    country: str
    currency: str
    locales: tuple[str, ...]
    tax: Mapping[str, int]  # tax class -> rate in 1/100 %
    shipping: tuple[ShippingOption, ...]
    shipping_tax_class: str | None = None
    prices_include_tax: bool = True
    sales_tax: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    tax_shipping: bool = False
    klarna_account: str | None = None  # a name of [klarna_accounts]; None: the environment's
    # Klarna's checkout options for this market's orders (rules/options.py), and whether
    # Klarna's Shipping Assistant prices its shipping (rules/ksa.py; `shipping` is then KSA's
    # fallback).
    options: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    shipping_assistant: bool = False

    @property
    def default_locale(self) -> str:
        return self.locales[0]

    def sales_tax_rate(self, region: str | None) -> int:
        if region and region.upper() in self.sales_tax:
            return self.sales_tax[region.upper()]
        return self.sales_tax.get(DEFAULT_SALES_TAX, 0)


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    type: str
    tax_class: str
    prices: Mapping[str, int]
    names: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    stock: int | None = None  # None: unlimited
    # Klarna's shipping_attributes (weight in g, dimensions in mm, tags), for the Shipping
    # Assistant; None when the shop gives none (rules/ksa.py).
    shipping_attributes: Mapping[str, Any] | None = None

    def display_name(self, language: str) -> str:
        return self.names.get(language, self.name)


@dataclass(frozen=True)
class Coupon:
    code: str
    percent: int | None = None
    amount: Mapping[str, int] = field(default_factory=lambda: _frozen({}))


@dataclass(frozen=True)
class KlarnaAccount:
    """One Klarna merchant account of `[klarna_accounts.<name>]`. The password is never in the
    file: `password_env` names the environment variable that holds it (read at start-up by
    callbacks/klarna/accounts.py, which also applies production's rules to it)."""

    name: str
    username: str
    password_env: str
    api_url: str | None = None  # None: the environment's KLARNA_API_URL
    region: str | None = None   # rules/regions.py: from a Klarna host, or the file's `region`

    @property
    def key(self) -> str:
        return f"klarna_accounts.{self.name}"


@dataclass(frozen=True)
class Shop:
    name: str
    default_country: str
    markets: Mapping[str, Market]
    products: Mapping[str, Product]
    coupons: Mapping[str, Coupon]
    source: str = "<memory>"
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _frozen({}))  # id → lang → text
    klarna_accounts: Mapping[str, KlarnaAccount] = field(default_factory=lambda: _frozen({}))

    def market(self, country: str | None) -> Market | None:
        return self.markets.get(country.upper()) if country else None

    def account_of(self, country: str | None) -> str | None:
        """The Klarna account that sells to `country`'s market: a name of [klarna_accounts], or
        None for the environment's KLARNA_API_URL/KLARNA_USERNAME/KLARNA_PASSWORD."""
        market = self.market(country)
        return market.klarna_account if market else None

    @property
    def uses_environment_account(self) -> bool:
        """Some market names no account: the environment's KLARNA_* settings are used."""
        return any(m.klarna_account is None for m in self.markets.values())

    @property
    def default_market(self) -> Market:
        return self.markets[self.default_country]


def load_shop(path: Path | str | None = None) -> Shop:
    """Read and check a shop file; raise ShopFileError naming the first problem found."""
    path = Path(path) if path else EXAMPLE_SHOP
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShopFileError(path, "(file)", "no such file") from None
    except OSError as exc:
        raise ShopFileError(path, "(file)", f"cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ShopFileError(path, "(file)", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ShopFileError(path, "(file)", f"is not valid TOML: {exc}") from None
    return parse_shop(raw, source=str(path))


def parse_shop(raw: Mapping[str, Any], source: str = "<memory>") -> Shop:
    return _Parser(source).shop(raw)


class _Parser:
    """Walks the TOML document; every check raises with the dotted key it was looking at."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ShopFileError(self.source, key, problem)

    # -- small typed getters ---------------------------------------------------------------
    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
        return value

    def string(self, value: Any, key: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "must be a non-empty string")
        if pattern and not pattern.fullmatch(value):
            self.fail(key, f"{value!r} is not {what}")
        return value

    def integer(self, value: Any, key: str, low: int, high: int, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(key, f"{value!r} is not {what}")
        return value

    def known(self, table: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        for name in table:
            if name not in allowed:
                self.fail(f"{key}.{name}" if key else name,
                          f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def money(self, value: Any, key: str, low: int = 1) -> Mapping[str, int]:
        what = "a positive integer in minor units" if low else "an integer ≥ 0 in minor units"
        table = self.table(value, key)
        out = {}
        for currency, amount in table.items():
            self.string(currency, f"{key}.{currency}", CURRENCY_RE, "an ISO 4217 currency code like SEK")
            out[currency] = self.integer(amount, f"{key}.{currency}", low, MAX_AMOUNT, what + f" ≤ {MAX_AMOUNT}")
        return _frozen(out)

    def names(self, value: Any, key: str) -> Mapping[str, str]:
        table = self.table(value, key)
        for lang, name in table.items():
            self.string(lang, f"{key}.{lang}", LANGUAGE_RE, "a two-letter language code like sv")
            self.string(name, f"{key}.{lang}")
        return _frozen(table)

    # -- the document ----------------------------------------------------------------------
    def shop(self, raw: Mapping[str, Any]) -> Shop:
        self.known(raw, "", {"shop", "markets", "products", "coupons", "texts", "klarna_accounts"})
        head = self.table(raw.get("shop"), "shop")
        self.known(head, "shop", {"name", "default_country"})
        name = self.string(head.get("name"), "shop.name")
        markets_raw = self.table(raw.get("markets"), "markets")
        if not markets_raw:
            self.fail("markets", "the shop sells to no market")
        # No [products] is fine: the catalog may live in the database (callbacks/catalog).
        products_raw = self.table(raw.get("products", {}), "products")
        products = {sku: self.product(sku, p) for sku, p in products_raw.items()}
        accounts = self.klarna_accounts(raw.get("klarna_accounts", {}))
        markets_raw, market_accounts = self.market_accounts(markets_raw)
        markets = {c: self.market(c, m, products) for c, m in markets_raw.items()}
        markets = self.bind_accounts(markets, market_accounts, accounts)
        default = self.string(head.get("default_country"), "shop.default_country", COUNTRY_RE,
                              "an upper-case ISO 3166 country code like SE")
        if default not in markets:
            self.fail("shop.default_country", f"{default} has no [markets.{default}] table")
        coupons_raw = self.table(raw.get("coupons", {}), "coupons")
        coupons = {code: self.coupon(code, c) for code, c in coupons_raw.items()}
        texts = self.texts(raw.get("texts", {}))
        return Shop(name, default, _frozen(markets), _frozen(products), _frozen(coupons), self.source,
                    texts, _frozen(accounts))

    def texts(self, raw: Any) -> Mapping[str, Mapping[str, str]]:
        """The merchant's own wording of shopper messages, per language; each must use only the
        placeholders of the message it replaces, or a refusal would fail while rendering."""
        out = {}
        for message_id, by_language in self.table(raw, "texts").items():
            key = f"texts.{message_id}"
            if message_id not in MESSAGES:
                self.fail(key, f"unknown message id (expected one of {', '.join(sorted(MESSAGES))})")
            names = self.names(by_language, key)
            allowed = parameters(message_id)
            for lang, text in names.items():
                used = set(PLACEHOLDER.findall(text))
                if used - allowed:
                    self.fail(f"{key}.{lang}", f"unknown placeholder %({sorted(used - allowed)[0]})s; "
                              f"this message has {', '.join(f'%({p})s' for p in sorted(allowed)) or 'none'}")
                if "%" in PLACEHOLDER.sub("", text).replace("%%", ""):
                    self.fail(f"{key}.{lang}", "has a stray %: write a literal % as %%")
            out[message_id] = names
        return _frozen(out)

    def product(self, sku: str, raw: Any) -> Product:
        key = f'products."{sku}"'
        if not SKU_RE.fullmatch(sku):
            self.fail(key, "a SKU is 1–255 characters without spaces")
        raw = self.table(raw, key)
        self.known(raw, key, {"name", "names", "type", "tax_class", "prices", "stock",
                              "shipping_attributes"})
        ptype = raw.get("type", "physical")
        if ptype not in PRODUCT_TYPES:
            self.fail(f"{key}.type", f"{ptype!r} is not physical or digital")
        prices = self.money(raw.get("prices"), f"{key}.prices")
        if not prices:
            self.fail(f"{key}.prices", "the product has no price in any currency")
        stock = raw.get("stock")
        if stock is not None:
            stock = self.integer(stock, f"{key}.stock", 0, 10**9, "a whole number ≥ 0")
        attributes = None
        if "shipping_attributes" in raw:
            try:
                attributes = ksa.parse_shipping_attributes(raw["shipping_attributes"],
                                                           f"{key}.shipping_attributes")
            except ksa.AttributesError as exc:
                self.fail(exc.key, exc.problem)
        return Product(
            sku=sku,
            name=self.string(raw.get("name"), f"{key}.name"),
            type=ptype,
            tax_class=self.string(raw.get("tax_class"), f"{key}.tax_class"),
            prices=prices,
            names=self.names(raw.get("names", {}), f"{key}.names"),
            stock=stock,
            shipping_attributes=attributes,
        )

    def market(self, country: str, raw: Any, products: Mapping[str, Product]) -> Market:
        key = f"markets.{country}"
        self.string(country, key, COUNTRY_RE, "an upper-case ISO 3166 country code like SE")
        raw = self.table(raw, key)
        self.known(raw, key, {"currency", "locales", "tax", "shipping_tax_class", "shipping",
                              "prices_include_tax", "sales_tax", "tax_shipping", "options",
                              "shipping_assistant"})
        currency = self.string(raw.get("currency"), f"{key}.currency", CURRENCY_RE,
                               "an ISO 4217 currency code like SEK")
        locales = raw.get("locales")
        if not isinstance(locales, list) or not locales:
            self.fail(f"{key}.locales", "must be a non-empty list like [\"sv-SE\", \"en-SE\"]")
        for i, loc in enumerate(locales):
            self.string(loc, f"{key}.locales[{i}]", LOCALE_RE, "a locale shaped like sv-SE")
        include = raw.get("prices_include_tax", True)
        if not isinstance(include, bool):
            self.fail(f"{key}.prices_include_tax", "must be true or false")
        tax_shipping = raw.get("tax_shipping", False)
        if not isinstance(tax_shipping, bool):
            self.fail(f"{key}.tax_shipping", "must be true or false")
        tax, sales_tax, ship_class = {}, {}, None
        rate_what = f"a tax rate in 1/100 % from 0 to {MAX_TAX_RATE} (2500 = 25 %)"
        if include:
            for cls, rate in self.table(raw.get("tax"), f"{key}.tax").items():
                tax[cls] = self.integer(rate, f"{key}.tax.{cls}", 0, MAX_TAX_RATE, rate_what)
            for sku, product in products.items():
                if product.tax_class not in tax:
                    self.fail(f'products."{sku}".tax_class',
                              f"tax class {product.tax_class!r} has no rate in [{key}] tax")
            ship_class = self.string(raw.get("shipping_tax_class"), f"{key}.shipping_tax_class")
            if ship_class not in tax:
                self.fail(f"{key}.shipping_tax_class", f"{ship_class!r} is not a tax class of {key}.tax")
        else:
            for region, rate in self.table(raw.get("sales_tax", {}), f"{key}.sales_tax").items():
                # States are upper-cased (Klarna sends "ca" as often as "CA"); the key
                # `default`, in any case, is the rate of every state not listed.
                name = DEFAULT_SALES_TAX if region.lower() == DEFAULT_SALES_TAX else region.upper()
                sales_tax[name] = self.integer(rate, f"{key}.sales_tax.{region}", 0,
                                                         MAX_TAX_RATE, rate_what)
        shipping_raw = raw.get("shipping", [])
        if not isinstance(shipping_raw, list):
            self.fail(f"{key}.shipping", "must be an array of tables ([[markets.XX.shipping]])")
        shipping = tuple(self.shipping(f"{key}.shipping[{i}]", s) for i, s in enumerate(shipping_raw))
        ids = [s.id for s in shipping]
        for i, sid in enumerate(ids):
            if ids.index(sid) != i:
                self.fail(f"{key}.shipping[{i}].id", f"{sid!r} is used twice in this market")
        try:
            market_options = options.parse(raw.get("options", {}), f"{key}.options")
        except options.OptionsError as exc:
            self.fail(exc.key, exc.problem)
        assistant = raw.get("shipping_assistant", False)
        if not isinstance(assistant, bool):
            self.fail(f"{key}.shipping_assistant", "must be true or false")
        if assistant and not include and tax_shipping:
            # The sales-tax line would have to tax a shipping price only Klarna knows, and
            # Klarna adds its line after our reply (docs/design.md §5.8).
            self.fail(f"{key}.shipping_assistant", "Klarna's Shipping Assistant prices shipping "
                      "itself, so a net-price market cannot also tax it (tax_shipping = true)")
        return Market(country, currency, tuple(locales), _frozen(tax), shipping, ship_class,
                      include, _frozen(sales_tax), tax_shipping, options=market_options,
                      shipping_assistant=assistant)

    def shipping(self, key: str, raw: Any) -> ShippingOption:
        raw = self.table(raw, key)
        self.known(raw, key, {"id", "name", "names", "price", "free_over", "preselected", "method",
                              "description", "descriptions"})
        if "price" not in raw:
            self.fail(f"{key}.price", "a shipping option needs a price table like { SEK = 4900 }")
        method = raw.get("method")
        if method is not None and method not in SHIPPING_METHODS:
            self.fail(f"{key}.method", f"{method!r} is not one of Klarna's shipping methods "
                                       f"({', '.join(sorted(SHIPPING_METHODS))})")
        preselected = raw.get("preselected", False)
        if not isinstance(preselected, bool):
            self.fail(f"{key}.preselected", "must be true or false")
        description = raw.get("description")
        if description is not None:
            self.string(description, f"{key}.description")
        descriptions = self.names(raw.get("descriptions", {}), f"{key}.descriptions")
        if descriptions and description is None:
            self.fail(f"{key}.descriptions", "descriptions by language need a description, "
                                             "the text every other language sees")
        price = self.money(raw["price"], f"{key}.price", low=0)
        if not price:
            self.fail(f"{key}.price", "a shipping option needs a price in at least one currency")
        return ShippingOption(
            id=self.string(raw.get("id"), f"{key}.id", SKU_RE, "an id without spaces"),
            name=self.string(raw.get("name"), f"{key}.name"),
            price=price,
            free_over=self.money(raw.get("free_over", {}), f"{key}.free_over", low=0),
            preselected=preselected,
            method=method,
            description=description,
            names=self.names(raw.get("names", {}), f"{key}.names"),
            descriptions=descriptions,
        )

    # -- Klarna accounts: [klarna_accounts.<name>] and each market's klarna_account ------------
    def klarna_accounts(self, raw: Any) -> dict[str, KlarnaAccount]:
        """The shop's Klarna accounts. None at all: every market sells through the environment's
        one account (KLARNA_API_URL, KLARNA_USERNAME, KLARNA_PASSWORD), as before accounts."""
        out = {}
        for name, table in self.table(raw, "klarna_accounts").items():
            key = f"klarna_accounts.{name}"
            if not ACCOUNT_NAME_RE.fullmatch(name):
                self.fail(key, "an account name is 1–64 characters of A–Z a–z 0–9 _ -")
            table = self.table(table, key)
            if "password" in table:
                self.fail(f"{key}.password", "a password is never kept in the shop file: set "
                                             "password_env to the name of the environment variable "
                                             "that holds it")
            self.known(table, key, {"api_url", "username", "password_env", "region"})
            api_url = table.get("api_url")
            if api_url is not None:
                api_url = self.api_url(api_url, f"{key}.api_url")
            password_env = self.string(table.get("password_env"), f"{key}.password_env", ENV_NAME_RE,
                                       "an environment variable name like KLARNA_US_PASSWORD")
            region = self.region(table, key, api_url)
            out[name] = KlarnaAccount(name, self.string(table.get("username"), f"{key}.username"),
                                      password_env, api_url, region)
        return out

    def api_url(self, value: Any, key: str) -> str:
        url = self.string(value, key).strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            self.fail(key, f"{url!r} is not a URL")
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query \
                or parts.fragment or parts.username or parts.password:
            self.fail(key, f"{url!r} is not an http(s)://host[:port][/path] base URL like "
                           "https://api-na.klarna.com (no query, no credentials)")
        return url.rstrip("/")

    def region(self, table: Mapping[str, Any], key: str, api_url: str | None) -> str | None:
        """Klarna's host decides the region; any other host (the sandbox, a stand-in) takes the
        file's `region`, and without one sells any currency."""
        host_region = regions.of_url(api_url)
        given = table.get("region")
        if given is not None:
            allowed = ", ".join(f"{r} ({regions.name(r)})" for r in regions.CURRENCIES)
            if given not in regions.CURRENCIES:
                self.fail(f"{key}.region", f"{given!r} is not one of Klarna's regions: {allowed}")
            if host_region and given != host_region:
                self.fail(f"{key}.region", f"{given!r} ({regions.name(given)}), but {api_url} is "
                                           f"Klarna's {regions.name(host_region)} host")
        return host_region or given

    def market_accounts(self, markets_raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Each market's `klarna_account`, taken out of its table before the market is read."""
        tables, named = {}, {}
        for country, table in markets_raw.items():
            if isinstance(table, dict) and "klarna_account" in table:
                table = dict(table)
                named[country] = table.pop("klarna_account")
            tables[country] = table
        return tables, named

    def bind_accounts(self, markets: dict[str, Market], named: Mapping[str, Any],
                      accounts: Mapping[str, KlarnaAccount]) -> dict[str, Market]:
        for country, name in named.items():
            key = f"markets.{country}.klarna_account"
            self.string(name, key)
            if name not in accounts:
                known = ", ".join(sorted(accounts)) or "none: add a [klarna_accounts.<name>] table"
                self.fail(key, f"{name!r} is not an account of [klarna_accounts] ({known})")
            markets[country] = replace(markets[country], klarna_account=name)
            problem = region_problem(markets[country], accounts[name].region)
            if problem:
                self.fail(key, f"{problem} (klarna_accounts.{name})")
        return markets

    def coupon(self, code: str, raw: Any) -> Coupon:
        key = f"coupons.{code}"
        raw = self.table(raw, key)
        self.known(raw, key, {"percent", "amount"})
        if ("percent" in raw) == ("amount" in raw):
            self.fail(key, "a coupon has exactly one of percent or amount")
        if "percent" in raw:
            return Coupon(code, percent=self.integer(raw["percent"], f"{key}.percent", 1, 100,
                                                     "a whole percent from 1 to 100"))
        amount = self.money(raw["amount"], f"{key}.amount")
        if not amount:
            self.fail(f"{key}.amount", "an amount coupon needs an amount in at least one currency")
        return Coupon(code, amount=amount)


def region_problem(market: Market, region: str | None) -> str | None:
    """Why an account of `region` cannot sell to `market` (its currency is not the region's),
    or None. Klarna refuses such an order (docs/klarna.md §6.1)."""
    if regions.sells(region, market.currency):
        return None
    assert region is not None
    return (f"{market.country} sells in {market.currency}, which Klarna's {regions.name(region)} "
            f"region does not ({regions.currencies(region)})")
