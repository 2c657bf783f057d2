"""rules/paid.py: the push's check of what was paid against the priced cart."""
from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from callbacks.rules.paid import mismatch

LINE = st.fixed_dictionaries({
    "type": st.sampled_from(["physical", "shipping_fee", "discount"]),
    "reference": st.text("ABCDEFGH-", min_size=1, max_size=6),
    "quantity": st.integers(1, 20), "unit_price": st.integers(0, 10**6),
    "tax_rate": st.sampled_from([0, 1200, 2500]), "total_amount": st.integers(0, 10**7),
    "total_discount_amount": st.integers(0, 1000), "total_tax_amount": st.integers(0, 10**6),
})
PRICED = st.builds(lambda lines, currency: {
    "market": {"currency": currency},
    "order": {"order_amount": sum(line["total_amount"] for line in lines), "order_lines": lines}},
    st.lists(LINE, min_size=1, max_size=8, unique_by=lambda line: (line["type"], line["reference"])),
    st.sampled_from(["SEK", "EUR", "USD"]))


def om_order(priced):
    return {"order_amount": priced["order"]["order_amount"],
            "purchase_currency": priced["market"]["currency"],
            "order_lines": copy.deepcopy(priced["order"]["order_lines"])}


@given(PRICED, st.randoms())
def test_the_priced_cart_paid_as_priced_matches_in_any_line_order(priced, rnd):
    paid = om_order(priced)
    rnd.shuffle(paid["order_lines"])
    assert mismatch(priced, paid) is None


@given(PRICED, st.data())
def test_tax_within_one_minor_unit_is_rounding(priced, data):
    paid = om_order(priced)
    for line in paid["order_lines"]:
        line["total_tax_amount"] += data.draw(st.sampled_from([-1, 0, 1]))
    assert mismatch(priced, paid) is None


@settings(max_examples=200)
@given(PRICED, st.data())
def test_a_changed_line_is_named_with_both_totals(priced, data):
    paid = om_order(priced)
    i = data.draw(st.integers(0, len(paid["order_lines"]) - 1))
    field = data.draw(st.sampled_from(["quantity", "unit_price", "total_amount",
                                       "total_discount_amount", "total_tax_amount"]))
    delta = data.draw(st.integers(2, 500) | st.integers(-500, -2))
    paid["order_lines"][i][field] += delta
    found = mismatch(priced, paid)
    assert found is not None
    assert found["references"] == [paid["order_lines"][i]["reference"]]
    assert found["expected"] == {"order_amount": priced["order"]["order_amount"],
                                 "purchase_currency": priced["market"]["currency"]}
    assert found["paid"]["order_amount"] == paid["order_amount"]


@given(PRICED, st.integers(1, 10**4))
def test_a_different_total_or_currency_is_a_mismatch(priced, delta):
    paid = om_order(priced)
    paid["order_amount"] += delta
    assert mismatch(priced, paid)["paid"]["order_amount"] == priced["order"]["order_amount"] + delta
    paid = om_order(priced)
    paid["purchase_currency"] = "NOK"
    assert mismatch(priced, paid)["paid"]["purchase_currency"] == "NOK"


@given(PRICED)
def test_a_line_only_on_one_side_is_named(priced):
    paid = om_order(priced)
    extra = {"type": "gift_card", "reference": "GIFT", "quantity": 1, "unit_price": -100,
             "total_amount": -100, "total_discount_amount": 0, "total_tax_amount": 0}
    paid["order_lines"].append(extra)
    assert "GIFT" in mismatch(priced, paid)["references"]
    assert mismatch(paid | {"market": priced["market"], "order": paid}, om_order(priced)) is not None
