"""Klarna's bodies as loaded (callbacks/klarna/schemas.py): the fast way through validation's
order lines must load exactly what OrderLineSchema loads, and refuse exactly what it refuses."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError, fields, validate

from callbacks.klarna import schemas

# The schema's way, as validation loaded its lines before ComparedLines.
THROUGH_SCHEMA = fields.List(fields.Nested(schemas.OrderLineSchema), validate=validate.Length(max=1000))

_EDGES = [0, 1, -1, 10000, 10001, schemas.MAX, schemas.MAX + 1, 2**63, -(2**63) - 1]
_VALUES = st.one_of(st.none(), st.booleans(), st.sampled_from(_EDGES), st.integers(),
                    st.floats(allow_nan=False), st.text(max_size=4), st.just("x" * 256),
                    st.just("x" * 255), st.lists(st.integers(), max_size=1), st.just({}))
_KEYS = st.sampled_from(["type", "reference", "quantity", "unit_price", "tax_rate", "total_amount",
                         "total_discount_amount", "total_tax_amount", "name", "merchant_data"])
_PLAIN = st.fixed_dictionaries(
    {"quantity": st.integers(0, schemas.MAX)},
    optional={"type": st.one_of(st.none(), st.text(max_size=12)),
              "reference": st.one_of(st.none(), st.text(max_size=255)),
              "tax_rate": st.integers(0, 10000), "unit_price": st.integers(),
              "total_amount": st.integers(), "total_discount_amount": st.integers(),
              "total_tax_amount": st.integers(), "name": st.text(max_size=8)})
# Klarna-like lines, the same with one value swapped for an edge case, arbitrary dicts, non-dicts.
_DICT_LINE = st.one_of(_PLAIN, st.tuples(_PLAIN, _KEYS, _VALUES).map(lambda t: {**t[0], t[1]: t[2]}),
                       st.dictionaries(_KEYS, _VALUES, max_size=9))
_LINE = st.one_of(_DICT_LINE, _VALUES)


def load(field, value):
    try:
        return "loaded", field.deserialize(value)
    except ValidationError as exc:
        return "refused", exc.messages


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, max_size=6))
def test_validation_lines_load_as_the_schema_loads_them(lines):
    assert load(schemas.ComparedLines(), lines) == load(THROUGH_SCHEMA, lines)


@settings(max_examples=200, deadline=None)
@given(st.lists(_PLAIN, min_size=1, max_size=6))
def test_plain_lines_take_the_fast_way(lines):
    """Klarna's own lines (exact types, in range) are the common case the fast way exists for."""
    assert all(schemas._plain_line(line) is not None for line in lines)
    assert load(schemas.ComparedLines(), lines) == load(THROUGH_SCHEMA, lines)


KLARNA_LINE = {"type": "physical", "reference": "TSHIRT-BLUE-M", "name": "Blue T-shirt", "quantity": 2,
               "unit_price": 19900, "tax_rate": 2500, "total_amount": 39800,
               "total_discount_amount": 0, "total_tax_amount": 7960}
EDGE_VALUES = [True, False, None, 1.0, "1", -1, 0, 10000, 10001, schemas.MAX, schemas.MAX + 1,
               2**70, "", "x" * 255, "x" * 256, [], {}]


@pytest.mark.parametrize("key", ["type", "reference", "quantity", "unit_price", "tax_rate",
                                 "total_amount", "total_discount_amount", "total_tax_amount"])
@pytest.mark.parametrize("value", EDGE_VALUES, ids=repr)
def test_every_edge_value_of_every_key_loads_as_the_schema_loads_it(key, value):
    for line in ({**KLARNA_LINE, key: value}, {k: v for k, v in KLARNA_LINE.items() if k != key}):
        lines = [KLARNA_LINE, line]
        assert load(schemas.ComparedLines(), lines) == load(THROUGH_SCHEMA, lines)


def load_goods(lines):
    try:
        return "loaded", schemas.goods_lines(lines)
    except schemas.LinesError as exc:
        return "refused", exc.messages


def goods_through_schema(lines):
    try:
        return "loaded", schemas.GoodsLineSchema(many=True).load(lines)
    except ValidationError as exc:
        return "refused", {"order_lines": exc.messages}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_DICT_LINE, max_size=6))  # LineObjects let only lists of objects through
def test_goods_lines_load_as_the_schema_loads_them(lines):
    """goods_lines (a session built from Klarna's lines) takes the same fast way."""
    assert load_goods(lines) == goods_through_schema(lines)


@pytest.mark.parametrize("key", ["type", "reference", "quantity"])
@pytest.mark.parametrize("value", EDGE_VALUES, ids=repr)
def test_every_edge_value_of_a_goods_line_loads_as_the_schema_loads_it(key, value):
    for line in ({**KLARNA_LINE, key: value}, {k: v for k, v in KLARNA_LINE.items() if k != key}):
        assert load_goods([KLARNA_LINE, line]) == goods_through_schema([KLARNA_LINE, line])


@pytest.mark.parametrize("value", [None, "lines", {}, [1] * 3, [{"quantity": 1}] * 1001])
def test_what_is_not_a_list_of_lines_is_refused_as_before(value):
    assert load(schemas.ComparedLines(), value)[0] == "refused"
    assert load(schemas.ComparedLines(), value) == load(THROUGH_SCHEMA, value)
