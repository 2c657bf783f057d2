"""A session Klarna's first callback creates is priced once, not once without the body's
addresses and once with them: what each callback decides for it must be what pricing the built
state and then its addressed state gives, for every market, shipping country, region and chosen
option (the taxes differ by country and, in the US, by state; the options by market)."""
from __future__ import annotations

import pytest

from callbacks.rules import checkout
from callbacks.rules.shop import EXAMPLE_SHOP, load_shop
from tests.payloads import address, goods_line, shipping_service_body

SHOP = load_shop(EXAMPLE_SHOP)


def body(currency: str, billing: str, shipping: str, region: str | None = None,
         option: str | None = None) -> dict:
    lines = [goods_line(SHOP, "TSHIRT-BLUE-M", 2, currency, 2500),
             goods_line(SHOP, "MUG-ENAMEL", 1, currency, 2500)]
    out = shipping_service_body(lines, currency=currency, country=billing)
    out["shipping_address"] = address(shipping, region)
    if region:
        out["billing_address"] = address(billing, region)
    if option:
        out["selected_shipping_option"] = {"id": option}
    return out


def two_step(callback: str, sid: str, b: dict) -> checkout.Decision:
    """The decision as it was reached before: the state built from the body and priced, then
    the callback on that state as if it were the session's own."""
    built = checkout.state_from_body(SHOP, sid, b)
    # The callback on a known state prices once, from the built state: the same rules.
    known_decision = getattr(checkout, callback)(SHOP, built, sid, b)
    return checkout.Decision(known_decision.state, known_decision.event_type,
                             known_decision.data)


CASES = [("SEK", "SE", "SE", None, None), ("SEK", "SE", "SE", "AB", None), ("SEK", "SE", "FI", None, None),
         ("EUR", "FI", "DE", None, None), ("USD", "US", "US", "CA", None),
         ("USD", "US", "US", "NY", None), ("SEK", "SE", "SE", None, "instabox-locker"),
         ("EUR", "DE", "AT", None, None)]


@pytest.mark.parametrize("callback", ["address_update", "shipping_option_update"])
@pytest.mark.parametrize("currency,billing,shipping,region,option", CASES)
def test_a_new_session_gets_the_order_of_its_addressed_state(callback, currency, billing,
                                                            shipping, region, option):
    b = body(currency, billing, shipping, region, option)
    new = getattr(checkout, callback)(SHOP, None, "s-new", b)
    reference = two_step(callback, "s-new", b)
    for key in ("order", "shipping_options", "selected_shipping_option", "market",
                "shipping_country", "shipping_region", "billing_country", "billing_region"):
        assert new.state[key] == reference.state[key], key
    assert new.state["order"] == checkout.reprice(SHOP, new.state)["order"]


def test_an_unknown_sku_is_refused_before_an_unsupported_address():
    """A body whose goods the shop does not sell and whose country it does not ship to gets
    the goods' refusal, as it did when the built session was priced before its addresses."""
    b = body("SEK", "SE", "SE")
    b["order_lines"][0] = {**b["order_lines"][0], "reference": "NO-SUCH-SKU"}
    b["shipping_address"] = address("JP")
    with pytest.raises(checkout.Rejected) as refused:
        checkout.address_update(SHOP, None, "s-new", b)
    assert refused.value.error_type == "approval_failed"
