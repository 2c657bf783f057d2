"""Hypothesis strategies for the fuzzers: any JSON, raw bytes, and near-valid Klarna bodies.

A near-valid body starts from a body Klarna really sends (tests/payloads.py) and breaks it in
one to three places: a field dropped, a value of the wrong type, a huge or negative number,
nested garbage, unicode trouble (NUL, lone surrogates, combining marks, full-width letters,
right-to-left marks, case-changing letters like ß), or an unknown key. Whole bodies that are
not a JSON object at all come from `raw_bodies`: bytes, truncated JSON, NaN, BOMs, UTF-16,
and nesting far deeper than any parser's recursion limit.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from callbacks.klarna.lifecycle import FRAUD_EVENTS
from callbacks.rules.shop import load_shop

from ..payloads import goods_line, shipping_service_body, validation_body

SHOP = load_shop()
SKUS = sorted(SHOP.products)
SHIPPING_IDS = sorted({o.id for m in SHOP.markets.values() for o in m.shipping})
MARKETS = sorted(SHOP.markets)

HUGE_INTS = st.sampled_from([-1, 0, 1, 2**31 - 1, 2**31, -2**31, 2**53 + 1, 2**63 - 1, 2**63,
                             -2**63, 2**64, 10**20, -10**20, 10**100, 100_000_000,
                             100_000_001, 10_000, 10_001])
NASTY_STRINGS = st.sampled_from([
    "", " ", "\x00", "SE\x00", "\ud800", "\udfff", "S\u0301E", "ＳＥ", "𝐒𝐄", "İ", "ß", "ﬃ",
    "\u202eES", "SE\n", " se ", "null", "0", "é" * 300, "x" * 5000, "🇸🇪", "\\", "\"", "'; --",
    "%00", "../../etc/passwd", "<script>", "sv-SE\n", "EN-us", "zz-ZZ", "SEK\x00", "XXX",
])
COUNTRIES = st.sampled_from(MARKETS + [c.lower() for c in MARKETS] + ["XX", "ZZ", "AQ", "S", "SWE"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), HUGE_INTS,
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
                    NASTY_STRINGS)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=20)),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=25)


def deep(n: int, leaf: Any = 1) -> Any:
    """Nested lists n deep, built without recursion."""
    value = leaf
    for _ in range(n):
        value = [value]
    return value


NESTED_GARBAGE = st.one_of(JSON_VALUES, st.integers(50, 400).map(deep),
                           st.integers(50, 400).map(lambda n: json.loads('{"a":' * n + "1" + "}" * n)))


def encode(value: Any) -> bytes:
    """JSON as Klarna would send it, but able to carry lone surrogates (as \\ud800 escapes)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


RAW_BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b" ", b"null", b"[]", b"{}", b"0", b'""', b"NaN", b"Infinity",
                     b"-Infinity", b"1e999", b'{"order_amount": NaN}', b'{"order_amount": 1e999}',
                     b"\xef\xbb\xbf{}", b'{"locale": "\xff\xfe"}', b'{"a": "\\ud800"}',
                     b'{"a": "\\u0000"}', b"{", b'{"order_lines": [', b"\x00" * 64,
                     '{"order_amount": 1}'.encode("utf-16"), '{}'.encode("utf-32")]),
    st.integers(500, 300_000).map(lambda n: b"[" * n),
    st.integers(500, 100_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(500, 50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(10, 120).map(lambda n: b'{"order_lines": ' + b"[" * n * 10 + b"]" * n * 10 + b"}"),
    JSON_VALUES.map(encode),
)


def lines_for(currency: str, country: str):
    market = SHOP.market(country)
    return st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 5)), min_size=0, max_size=4,
                    unique_by=lambda t: t[0]).map(
        lambda items: [goods_line(SHOP, sku, qty, currency,
                                  market.tax[SHOP.products[sku].tax_class] if market.prices_include_tax else 0)
                       for sku, qty in items])


@st.composite
def valid_shipping_body(draw) -> dict:
    country = draw(st.sampled_from(MARKETS))
    currency = SHOP.market(country).currency
    body = shipping_service_body(draw(lines_for(currency, country)), currency=currency,
                                 country=country, locale=SHOP.market(country).default_locale,
                                 region=draw(st.sampled_from([None, "CA", "NY", "TX"])))
    if draw(st.booleans()):
        body["shipping_address"]["country"] = draw(COUNTRIES)
    if draw(st.booleans()):
        body["selected_shipping_option"] = {"id": draw(st.sampled_from(SHIPPING_IDS + ["nope"]))}
    return body


@st.composite
def valid_validation_body(draw) -> dict:
    body = draw(valid_shipping_body())
    out = validation_body(body["order_lines"], currency=body["purchase_currency"],
                          country=body["billing_address"]["country"], locale=body["locale"],
                          order_id=draw(st.sampled_from(["ord-1", "ord-2", None])))
    out["shipping_address"] = body["shipping_address"]
    if "selected_shipping_option" in body:
        out["selected_shipping_option"] = body["selected_shipping_option"]
    return out


def valid_notification_body():
    return st.fixed_dictionaries({"order_id": st.sampled_from(["ord-1", "ord-2"]),
                                  "event_type": st.sampled_from(sorted(FRAUD_EVENTS) + ["FRAUD_RISK_MAYBE"])})


def _slots(value: Any, out: list) -> list:
    """Every (container, key) in a JSON value, iteratively."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                out.append((node, key))
                stack.append(item)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                out.append((node, index))
                stack.append(item)
    return out


@st.composite
def broken(draw, valid) -> dict:
    """A valid body broken in one to three places."""
    body = copy.deepcopy(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(body, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["drop", "scalar", "huge", "negative", "string", "garbage",
                                       "extra", "case"]))
        if action == "drop":
            del container[key]
        elif action == "scalar":
            container[key] = draw(SCALARS)
        elif action == "huge":
            container[key] = draw(HUGE_INTS)
        elif action == "negative":
            value = container[key]
            container[key] = -value if isinstance(value, int) and value else -draw(st.integers(1, 10**12))
        elif action == "string":
            container[key] = draw(NASTY_STRINGS)
        elif action == "garbage":
            container[key] = draw(NESTED_GARBAGE)
        elif action == "extra":
            target = container[key] if isinstance(container[key], dict) else body
            target[draw(st.text(max_size=12))] = draw(SCALARS)
        elif action == "case" and isinstance(container[key], str):
            container[key] = container[key].swapcase()
    return body


def bodies(valid) -> st.SearchStrategy[bytes]:
    """What the fuzzers post: mostly broken-valid bodies, some valid, some raw junk."""
    return st.one_of(valid.map(encode), broken(valid).map(encode), RAW_BODIES)
