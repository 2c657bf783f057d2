"""The sandbox as Klarna's Shipping Assistant (sandbox/assistant.py, docs/sandbox.md) and what it
enforces of the options, the fallback options and the attachment — against the scripted
merchant of tests/test_shopper.py: the TMS table and its control API, Klarna's own shipping line
after every change, no shipping_option_update ever, the reserved shipment at purchase, B2B
purchases and Klarna's rule for a shipping address without allow_separate_shipping_address."""
from __future__ import annotations

import json

import pytest
from flask import jsonify

from .sandbox_fixtures import sample_order, start_sandbox  # noqa: F401 (fixture)
from .test_shopper import FAST, Merchant, act

EUR_GOODS = {"type": "physical", "reference": "TSHIRT-BLUE-M", "name": "T-shirt", "quantity": 2,
             "unit_price": 1990, "tax_rate": 2000, "total_amount": 3980, "total_discount_amount": 0,
             "total_tax_amount": 663}
FALLBACK = [
    {"id": "post-at-home", "name": "Post home", "price": 590, "tax_amount": 98, "tax_rate": 2000,
     "preselected": True, "shipping_method": "Home"},
    {"id": "post-at-pickup", "name": "Post pickup", "price": 490, "tax_amount": 82, "tax_rate": 2000},
]


def goods_only(goods=EUR_GOODS, **extra) -> dict:
    return {"order_amount": goods["total_amount"], "order_tax_amount": goods["total_tax_amount"],
            "order_lines": [dict(goods)], "purchase_currency": "EUR", **extra}


def at_order(**overrides) -> dict:
    """An AT/EUR order of the T-shirts (purchase_currency from goods_only)."""
    return sample_order(**{"purchase_country": "AT", "locale": "de-AT", **goods_only(), **overrides})


@pytest.fixture
def merchant():
    m = Merchant()
    m.handlers["address_update"] = lambda body: jsonify(goods_only(shipping_options=FALLBACK))
    m.handlers["country_change"] = m.handlers["address_update"]
    yield m
    m.stop()


@pytest.fixture
def sandbox(start_sandbox):  # noqa: F811
    return start_sandbox(FAST)


def ksa_order(sandbox, merchant, **overrides) -> str:
    urls = merchant.urls()
    del urls["shipping_option_update"]  # as Klarna's guide asks of a KSA merchant
    order = at_order(merchant_urls=urls, shipping_options=FALLBACK, shipping_countries=["AT", "DE"],
                     billing_countries=["AT", "DE"])
    order.update(overrides)
    return sandbox.client().create_order(order)["order_id"]


def lines_of(sandbox, order_id) -> list[tuple]:
    order = sandbox.inspect(order_id)["order"]
    return [(ln["type"], ln["reference"], ln["total_amount"]) for ln in order["order_lines"]]


def frame_state(sandbox, order_id) -> dict:
    return sandbox._http.get(f"{sandbox.url}/sandbox/checkout/{order_id}/order", timeout=10).json()


# -- the TMS table -------------------------------------------------------------------------------
def test_the_tms_table_is_set_read_and_reset_through_the_control_api(sandbox):
    table = sandbox.control("GET", "/tms")
    assert table["failing"] is False and {"AT", "DE"} <= set(table["countries"])
    mine = {"AT": [{"id": "bike", "name": "Bike courier", "price": {"EUR": 990}, "tax_rate": 2000,
                    "carrier": "Veloblitz", "class": "express", "preselected": True}]}
    assert sandbox.control("PUT", "/tms", {"countries": mine})["countries"] == mine
    assert sandbox.control("PUT", "/tms", {"failing": True}) == {"countries": mine, "failing": True}
    assert sandbox.control("DELETE", "/tms") == table
    sandbox.control("PUT", "/tms", {"countries": mine})
    sandbox.control("POST", "/reset")
    assert sandbox.control("GET", "/tms") == table


@pytest.mark.parametrize("table, field", [
    ({"AT": [{"id": "x", "name": "X", "price": {"EUR": -1}, "tax_rate": 2000}]}, "countries.AT[0].price"),
    ({"AT": [{"id": "x", "name": "X", "price": {"EUR": 100}, "tax_rate": 20000}]}, "countries.AT[0].tax_rate"),
    ({"AT": [{"name": "X", "price": {"EUR": 100}, "tax_rate": 2000}]}, "countries.AT[0].id"),
    ({"AT": [{"id": "x", "name": "X", "price": {"EUR": 1}, "tax_rate": 0, "shipping_method": "Drone"}]},
     "countries.AT[0].shipping_method"),
    ({"AUT": []}, "countries.AUT")])
def test_a_bad_tms_table_is_klarnas_bad_value_naming_the_field(sandbox, table, field):
    error = sandbox.control("PUT", "/tms", {"countries": table}, expect=(400,))
    assert error["error_code"] == "BAD_VALUE" and error["error_messages"] == [f"Bad value: {field}"]


# -- a KSA order -----------------------------------------------------------------------------------
def test_klarna_adds_the_tms_options_line_itself_and_never_calls_shipping_option_update(sandbox, merchant):
    order_id = ksa_order(sandbox, merchant)
    assert lines_of(sandbox, order_id) == [("physical", "TSHIRT-BLUE-M", 3980),
                                           ("shipping_fee", "tms-post-at-home", 450)]
    order = sandbox.inspect(order_id)["order"]
    assert order["order_amount"] == 3980 + 450 and order["order_tax_amount"] == 663 + 75
    shown = frame_state(sandbox, order_id)
    assert shown["shipping_assistant"] == "tms" and shown["selected_shipping_option"] == "tms-post-at-home"
    assert [o["id"] for o in shown["shipping_options"]] == ["tms-post-at-home", "tms-dhl-at-shop", "tms-gls-at-express"]
    result = act(sandbox, order_id, "shipping_option", {"id": "tms-dhl-at-shop"})
    assert result["outcome"] == "applied" and result["callback"] == "shipping_assistant"
    assert lines_of(sandbox, order_id)[-1] == ("shipping_fee", "tms-dhl-at-shop", 390)
    assert merchant.calls == []  # no shipping_option_update, no callback at all
    assert act(sandbox, order_id, "shipping_option", {"id": "post-at-home"}, expect=(400,))  # not offered


def test_an_address_abroad_is_sent_as_usual_and_klarna_reprices_its_own_line(sandbox, merchant):
    order_id = ksa_order(sandbox, merchant)
    address = {"country": "AT", "given_name": "Anna", "postal_code": "1010"}
    result = act(sandbox, order_id, "address", {"billing_address": address,
                                                "shipping_address": {**address, "country": "DE"}})
    assert (result["callback"], result["outcome"]) == ("address_update", "applied")
    sent = merchant.of("address_update")[0]["body"]
    assert sent["selected_shipping_option"]["id"] == "tms-post-at-home"  # what the shopper had
    # The merchant's reply has goods only; Klarna's line follows the new destination (DE's TMS).
    assert lines_of(sandbox, order_id) == [("physical", "TSHIRT-BLUE-M", 3980),
                                           ("shipping_fee", "tms-dhl-de-home", 590)]
    assert sandbox.inspect(order_id)["order"]["order_lines"][-1]["tax_rate"] == 1900


def test_a_merchant_update_keeps_klarnas_line_on_top(sandbox, merchant):
    order_id = ksa_order(sandbox, merchant)
    act(sandbox, order_id, "shipping_option", {"id": "tms-gls-at-express"})
    three = {**EUR_GOODS, "quantity": 3, "total_amount": 5970, "total_tax_amount": 995}
    sandbox.client().update_order(order_id, goods_only(three))
    assert lines_of(sandbox, order_id) == [("physical", "TSHIRT-BLUE-M", 5970),
                                           ("shipping_fee", "tms-gls-at-express", 1290)]
    assert sandbox.inspect(order_id)["order"]["order_amount"] == 5970 + 1290


def test_when_the_tms_does_not_answer_the_merchants_fallback_is_offered(sandbox, merchant):
    sandbox.control("PUT", "/tms", {"failing": True})
    order_id = ksa_order(sandbox, merchant)
    shown = frame_state(sandbox, order_id)
    assert shown["shipping_assistant"] == "fallback"
    assert [o["id"] for o in shown["shipping_options"]] == ["post-at-home", "post-at-pickup"]
    assert lines_of(sandbox, order_id)[-1] == ("shipping_fee", "post-at-home", 590)


def test_the_purchase_reserves_the_shipment_and_completes_with_the_tms_reference(sandbox, merchant):
    order_id = ksa_order(sandbox, merchant)
    act(sandbox, order_id, "shipping_option", {"id": "tms-dhl-at-shop"})
    result = act(sandbox, order_id, "purchase")
    assert result["order"]["status"] == "checkout_complete"
    body = merchant.of("validation")[0]["body"]
    option = body["selected_shipping_option"]
    assert option["id"] == "tms-dhl-at-shop" and len(option["tms_reference"]) == 36
    assert option["delivery_details"]["pickup_location"]["id"] == "AT-1010-117"
    assert body["order_lines"][-1]["reference"] == "tms-dhl-at-shop"
    completed = result["order"]["merchant_order"]
    assert completed["selected_shipping_option"]["tms_reference"] == option["tms_reference"]
    assert completed["order_amount"] == 3980 + 390


def test_an_order_with_shipping_option_update_is_the_merchants_to_price(sandbox, merchant):
    order = at_order(merchant_urls=merchant.urls(), shipping_options=FALLBACK)
    order_id = sandbox.client().create_order(order)["order_id"]
    assert lines_of(sandbox, order_id) == [("physical", "TSHIRT-BLUE-M", 3980)]
    assert frame_state(sandbox, order_id)["shipping_assistant"] is None


# -- what create and update refuse -------------------------------------------------------------------
@pytest.mark.parametrize("change, field", [
    ({"shipping_options": [FALLBACK[0], {**FALLBACK[1], "id": "post-at-home"}]}, "shipping_options[1].id"),
    ({"shipping_options": [FALLBACK[0], {**FALLBACK[1], "preselected": True}]}, "shipping_options"),
    ({"shipping_options": [{**FALLBACK[0], "tax_amount": 10}]}, "shipping_options[0].tax_amount"),
    ({"shipping_options": [{k: v for k, v in FALLBACK[0].items() if k != "tax_rate"}]},
     "shipping_options[0].tax_rate")])
def test_ksas_fallback_options_must_be_ones_klarna_can_pick(sandbox, merchant, change, field):
    with pytest.raises(Exception) as info:
        ksa_order(sandbox, merchant, **change)
    assert f"Bad value: {field}" in str(info.value)


@pytest.mark.parametrize("attachment, field", [
    ({"content_type": "application/vnd.klarna.internal.emd-v2+json", "body": "{not json"}, "attachment.body"),
    ({"content_type": "application/vnd.klarna.internal.emd-v2+json", "body": {"a": 1}}, "attachment.body"),
    ({"content_type": "", "body": "{}"}, "attachment.content_type"),
    ({"body": "{}"}, "attachment.content_type")])
def test_the_attachment_must_be_a_content_type_and_a_json_string(sandbox, merchant, attachment, field):
    with pytest.raises(Exception) as info:
        sandbox.client().create_order(sample_order(attachment=attachment))
    assert f"Bad value: {field}" in str(info.value)
    good = {"content_type": "application/vnd.klarna.internal.emd-v2+json",
            "body": json.dumps({"customer_account_info": [{"unique_account_identifier": "x"}]})}
    created = sandbox.client().create_order(sample_order(attachment=good))
    assert created["attachment"] == good


@pytest.mark.parametrize("options, field", [
    ({"allowed_customer_types": ["company"]}, "options.allowed_customer_types[0]"),
    ({"allowed_customer_types": []}, "options.allowed_customer_types"),
    ({"color_button": "red"}, "options.color_button"),
    ({"allow_separate_shipping_address": "yes"}, "options.allow_separate_shipping_address"),
    ({"additional_checkbox": {"text": "x", "checked": False}}, "options.additional_checkbox.required")])
def test_options_are_held_to_klarnas_published_schema(sandbox, options, field):
    with pytest.raises(Exception) as info:
        sandbox.client().create_order(sample_order(options=options))
    assert f"Bad value: {field}" in str(info.value)


# -- B2B and the shipping address ---------------------------------------------------------------------
def test_a_business_buys_only_where_the_order_allows_organisations(sandbox, merchant):
    person_only = sandbox.client().create_order(sample_order(merchant_urls=merchant.urls()))["order_id"]
    refused = act(sandbox, person_only, "purchase", {"customer": {"type": "organization"}}, expect=(400,))
    assert refused["error_messages"][0].startswith("Bad value: customer.type")
    b2b = sandbox.client().create_order(sample_order(
        merchant_urls=merchant.urls(), options={"require_validate_callback_success": True,
                                                "allowed_customer_types": ["person", "organization"]}))["order_id"]
    assert frame_state(sandbox, b2b)["customer_types"] == ["person", "organization"]
    result = act(sandbox, b2b, "purchase", {"customer": {"type": "organization",
                                                         "organization_registration_id": "556036-0793"}})
    assert result["order"]["merchant_order"]["customer"]["type"] == "organization"
    assert merchant.of("validation")[-1]["body"]["customer"]["type"] == "organization"


def test_without_allow_separate_shipping_address_klarna_ships_to_the_billing_address(sandbox, merchant):
    order_id = sandbox.client().create_order(sample_order(
        merchant_urls=merchant.urls(),
        options={"allow_separate_shipping_address": False}))["order_id"]
    assert frame_state(sandbox, order_id)["separate_shipping"] is False
    billing = {"country": "SE", "given_name": "Sven", "postal_code": "11122"}
    act(sandbox, order_id, "address", {"billing_address": billing,
                                       "shipping_address": {"country": "FI", "given_name": "Other"}})
    sent = merchant.of("address_update")[-1]["body"]
    assert sent["shipping_address"] == sent["billing_address"] == billing
