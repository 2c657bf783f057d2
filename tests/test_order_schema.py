"""The sandbox refuses what Klarna's Checkout API v3 schema refuses, so a test against it catches
what the real Klarna would refuse: every
documented constraint of the order, its lines, shipping options, merchant URLs, options,
customer and addresses, broken once, is a 400 BAD_VALUE naming the field; a maximal valid order
and everything kco-sync sends are accepted."""
from __future__ import annotations

import base64
import copy
import re
import uuid

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callbacks.klarna.order import Urls, order_payload
from callbacks.rules import checkout
from callbacks.rules.pricing import PricingError
from callbacks.rules.shop import load_shop
from sandbox import create_sandbox

from .strategies import carts

MISSING = object()
AUTH = {"Authorization": "Basic " + base64.b64encode(b"sandbox:sandbox").decode()}


def url(prefix: str, length: int) -> str:
    return prefix + "a" * (length - len(prefix))


def address(country: str) -> dict:
    return {"given_name": "G" * 100, "family_name": "F" * 100, "email": "shopper@example.com",
            "title": "Mr", "street_address": "Lombard St 10", "street_address2": "Apt 214",
            "postal_code": "12345", "city": "Ankeborg", "region": "AB", "phone": "+46765260000",
            "country": country, "care_of": "C/O", "organization_name": "Org AB"}


def provider(name: str) -> dict:
    return {"name": "P" * 255, "fee": 100, "description": "D" * 500, "countries": ["SE", "fi"],
            "label": "continue", "redirect_url": url(f"https://{name}.example/start?", 2000),
            "image_url": url(f"https://{name}.example/logo.png?", 2000)}


# Every documented property, at its documented maximum where it has one.
MAXIMAL = {
    "purchase_country": "se", "purchase_currency": "sek", "locale": "sv-SE",
    "billing_address": address("SE"), "shipping_address": address("se"),
    "order_amount": 21900, "order_tax_amount": 4380,
    "order_lines": [
        {"type": "physical", "reference": "R" * 255, "name": "N" * 255, "quantity": 2,
         "quantity_unit": "pcs12345", "unit_price": 10000, "tax_rate": 2500, "total_amount": 19000,
         "total_discount_amount": 1000, "total_tax_amount": 3800, "merchant_data": "m" * 1024,
         "product_url": url("https://shop.example/p/", 1024),
         "image_url": url("https://shop.example/i/", 1024),
         "product_identifiers": {"brand": "b" * 70, "color": "c" * 64, "category_path": "p" * 750,
                                 "global_trade_item_number": "1" * 50,
                                 "manufacturer_part_number": "m" * 70, "size": "s" * 64},
         "shipping_attributes": {"weight": 1000, "dimensions": {"height": 1, "width": 2, "length": 3},
                                 "tags": ["dangerous_goods", "bulky"]},
         "subscription": {"name": "Premium", "interval": "MONTH", "interval_count": 1}},
        {"type": "shipping_fee", "reference": "postnord", "name": "PostNord", "quantity": 1,
         "unit_price": 2900, "tax_rate": 2500, "total_amount": 2900, "total_tax_amount": 580},
    ],
    "customer": {"type": "organization", "gender": "female", "date_of_birth": "1995-10-20",
                 "organization_registration_id": "556737-0431", "vat_id": "SE556737043101"},
    "merchant_urls": {
        "terms": url("http://127.0.0.1:8000/terms?", 2000),
        "checkout": url("http://localhost:8000/checkout?", 2000),
        "confirmation": url("https://shop.example/confirmation?", 2000),
        "push": url("http://shop.example/kco/push?", 2000),  # no https rule for push
        "notification": url("https://shop.example/kco/notification?", 2000),
        "cancellation_terms": url("https://shop.example/cancel?", 2000),
        "validation": url("https://shop.example/kco/validation?", 2000),
        "shipping_option_update": url("http://127.0.0.1:8000/kco/shipping_option_update?", 2000),
        "address_update": url("http://[::1]:8000/kco/address_update?", 2000),
        "country_change": url("http://localhost:8000/kco/country_change?", 2000),
    },
    "merchant_reference1": "1" * 255, "merchant_reference2": "2" * 255,
    "options": {
        "require_validate_callback_success": True, "acquiring_channel": "ECOMMERCE",
        "vat_removed": False, "allow_separate_shipping_address": True,
        "color_button": "#FF9900", "color_button_text": "#ffffff", "color_checkbox": "#000000",
        "color_checkbox_checkmark": "#aBcDeF", "color_header": "#123456", "color_link": "#654321",
        "date_of_birth_mandatory": True, "shipping_details": "S" * 255, "title_mandatory": False,
        "additional_checkbox": {"text": "T" * 1000, "checked": False, "required": False},
        "national_identification_number_mandatory": True, "additional_merchant_terms": "terms",
        "phone_mandatory": True, "radius_border": "5",
        "allowed_customer_types": ["person", "organization"], "show_subtotal_detail": True,
        "additional_checkboxes": [{"id": "newsletter", "text": "T" * 1000, "checked": True,
                                   "required": False}],
        "verify_national_identification_number": False, "auto_capture": False,
        "require_client_validation": False, "enable_discount_module": False,
        "show_vat_registration_number_field": True,
    },
    "attachment": {"body": "{}", "content_type": "application/vnd.klarna.internal.emd-v2+json"},
    "external_payment_methods": [provider("pay")],
    "external_checkouts": [provider("checkout")],
    "shipping_countries": ["SE", "fi"], "billing_countries": ["SE", "FI"],
    "shipping_options": [{
        "id": "postnord", "name": "N" * 255, "description": "1-3 days", "promo": "Christmas",
        "price": 2900, "preselected": True, "tax_amount": 580, "tax_rate": 2500,
        "shipping_method": "PickUpPoint", "tms_reference": "a1b2",
        "delivery_details": {"carrier": "PostNord", "class": "standard",
                             "product": {"name": "MyPack", "identifier": "19"},
                             "timeslot": {"id": "t1", "start": "10:00", "end": "12:00"},
                             "pickup_location": {"id": "p1", "name": "ICA", "address": address("SE")}},
        "selected_addons": [{"type": "gift_wrap", "price": 0, "external_id": "gw",
                             "user_input": "Happy birthday"}],
    }],
    "merchant_data": "d" * 6000,
    "gui": {"options": ["minimal_confirmation"]},
    "recurring": False,
    "tags": ["dangerous_goods"],
    "discount_lines": [{"name": "Super deal", "quantity": 1, "unit_price": -1000, "tax_rate": 2500,
                        "total_amount": -1000, "total_tax_amount": -200, "reference": "r" * 255,
                        "merchant_data": "m" * 1024}],
}

# (field as Klarna names it, a value that breaks one documented constraint; MISSING = left out)
VIOLATIONS = [
    ("purchase_country", "SWE"), ("purchase_country", "SE\n"), ("purchase_currency", "SE"),
    ("locale", "sv_SE"), ("order_amount", -1), ("order_amount", "21900"),
    ("order_tax_amount", -1), ("order_tax_amount", 4380.0), ("order_lines", {"x": 1}),
    ("merchant_urls", MISSING), ("locale", MISSING),
    # order_lines
    ("order_lines[0].type", "voucher"), ("order_lines[0].reference", "R" * 256),
    ("order_lines[0].reference", 19402), ("order_lines[0].name", ""),
    ("order_lines[0].name", "N" * 256), ("order_lines[0].quantity", -2),
    ("order_lines[0].quantity", 2.5), ("order_lines[0].quantity_unit", "x" * 9),
    ("order_lines[0].quantity_unit", ""), ("order_lines[0].unit_price", 100_000_001),
    ("order_lines[0].tax_rate", 10001), ("order_lines[0].tax_rate", -1),
    ("order_lines[0].total_amount", 100_000_001), ("order_lines[0].total_discount_amount", -1),
    ("order_lines[0].total_tax_amount", "3800"), ("order_lines[0].merchant_data", "m" * 1025),
    ("order_lines[0].product_url", "u" * 1025), ("order_lines[0].image_url", "u" * 1025),
    ("order_lines[0].product_identifiers.brand", "b" * 71),
    ("order_lines[0].product_identifiers.color", "c" * 65),
    ("order_lines[0].product_identifiers.category_path", "p" * 751),
    ("order_lines[0].product_identifiers.global_trade_item_number", "1" * 51),
    ("order_lines[0].product_identifiers.manufacturer_part_number", "m" * 71),
    ("order_lines[0].product_identifiers.size", "s" * 65),
    ("order_lines[0].shipping_attributes.weight", -1),
    ("order_lines[0].shipping_attributes.dimensions.height", -1),
    ("order_lines[0].shipping_attributes.tags", "bulky"),
    ("order_lines[0].subscription.interval", "DECADE"),
    ("order_lines[0].subscription.interval_count", 0),
    ("order_lines[0].subscription.interval", MISSING),
    *((f"order_lines[1].{name}", MISSING) for name in
      ("name", "quantity", "tax_rate", "total_amount", "total_tax_amount", "unit_price")),
    # shipping_options
    ("shipping_options[0].id", MISSING), ("shipping_options[0].name", ""),
    ("shipping_options[0].name", "N" * 256), ("shipping_options[0].price", "2900"),
    ("shipping_options[0].preselected", "yes"), ("shipping_options[0].tax_rate", -1),
    ("shipping_options[0].shipping_method", "Drone"), ("shipping_options[0].description", 7),
    ("shipping_options[0].delivery_details.product.name", 5),
    ("shipping_options[0].delivery_details.pickup_location.address.country", "SWE"),
    ("shipping_options[0].selected_addons[0].price", "0"),
    # merchant_urls
    *((f"merchant_urls.{name}", MISSING) for name in ("terms", "checkout", "confirmation", "push")),
    ("merchant_urls.push", "ftp://shop.example/push"), ("merchant_urls.terms", "terms"),
    ("merchant_urls.checkout", url("https://shop.example/checkout?", 2001)),
    ("merchant_urls.notification", url("https://shop.example/n?", 2001)),
    *((f"merchant_urls.{name}", f"http://shop.example/kco/{name}") for name in
      ("validation", "shipping_option_update", "address_update", "country_change")),
    ("merchant_urls.validation", "http://127.0.0.2.shop.example/kco/validation"),
    # top-level texts and lists
    ("merchant_reference1", "1" * 256), ("merchant_reference2", "2" * 256),
    ("merchant_data", "d" * 6001), ("shipping_countries[1]", "FIN"), ("billing_countries[0]", 46),
    ("gui.options", "minimal_confirmation"), ("recurring", "yes"), ("tags", "bulky"),
    # options
    *((f"options.{name}", value) for name in ("color_button", "color_button_text",
                                              "color_checkbox", "color_checkbox_checkmark",
                                              "color_header", "color_link")
      for value in ("red", "#FF990", "#FF9900 ", "FF9900", "#GG9900")),
    ("options.acquiring_channel", "ONLINE"), ("options.shipping_details", "S" * 256),
    ("options.allowed_customer_types", []),
    ("options.allowed_customer_types", ["person", "organization", "person"]),
    ("options.allowed_customer_types[0]", "robot"),
    ("options.require_validate_callback_success", "true"), ("options.radius_border", 5),
    ("options.additional_checkbox.text", "T" * 1001),
    ("options.additional_checkbox.checked", MISSING),
    ("options.additional_checkboxes[0].id", MISSING),
    # customer and addresses
    ("customer.type", "robot"), ("customer.gender", "other"),
    ("customer.date_of_birth", "1995-13-01"), ("customer.date_of_birth", "20.10.1995"),
    ("billing_address.country", "Sweden"), ("billing_address.given_name", 5),
    ("shipping_address.postal_code", 12345), ("billing_address", "Stårgatan 1"),
    # attachment, external payment methods and checkouts
    ("attachment.body", MISSING), ("attachment.content_type", 1),
    ("external_payment_methods[0].redirect_url", "http://pay.example/start"),
    ("external_payment_methods[0].redirect_url", MISSING),
    ("external_payment_methods[0].image_url", "http://pay.example/logo.png"),
    ("external_payment_methods[0].name", "P" * 256),
    ("external_payment_methods[0].description", "D" * 501),
    ("external_payment_methods[0].label", "go"),
    ("external_payment_methods[0].countries[0]", "SWE"),
    ("external_checkouts[0].redirect_url", url("https://checkout.example/?", 2001)),
    # discount_lines
    ("discount_lines[0].unit_price", 1000), ("discount_lines[0].total_amount", 1),
    ("discount_lines[0].name", ""), ("discount_lines[0].reference", "r" * 256),
    ("discount_lines[0].merchant_data", "m" * 1025), ("discount_lines[0].tax_rate", 10001),
    ("discount_lines[0].quantity", -1),
]


def with_value(order: dict, field: str, value) -> dict:
    """A copy of `order` with `field` (Klarna's path, `a.b[2].c`) set to `value` or removed."""
    order = copy.deepcopy(order)
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", field)]
    target = order
    for part in parts[:-1]:
        target = target[part]
    if value is MISSING:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return order


@pytest.fixture(scope="module")
def sandbox():
    return create_sandbox({"SANDBOX_USERNAME": "sandbox", "SANDBOX_PASSWORD": "sandbox"}).test_client()


def create(sandbox, order):
    return sandbox.post("/checkout/v3/orders", json=order, headers=AUTH)


def test_a_maximal_valid_order_is_accepted_and_kept(sandbox):
    resp = create(sandbox, MAXIMAL)
    assert resp.status_code == 201, resp.get_json()
    order = sandbox.get(resp.headers["Location"], headers=AUTH).get_json()
    assert {k: order[k] for k in MAXIMAL} == MAXIMAL


@pytest.mark.parametrize("field, value", VIOLATIONS,
                         ids=[f"{f}={'MISSING' if v is MISSING else repr(v)[:24]}" for f, v in VIOLATIONS])
def test_each_broken_constraint_is_a_bad_value_naming_the_field(sandbox, field, value):
    resp = create(sandbox, with_value(MAXIMAL, field, value))
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error_code"] == "BAD_VALUE"
    assert f"Bad value: {field}" in body["error_messages"]
    # nothing unrelated is blamed: only the field's own part of the order (or the totals it feeds)
    top = re.split(r"[.\[]", field)[0]
    for message in body["error_messages"]:
        assert message.startswith((f"Bad value: {top}", "Bad value: order_amount",
                                   "Bad value: order_tax_amount")), body["error_messages"]
    uuid.UUID(body["correlation_id"])


@pytest.mark.parametrize("field, value", [
    ("order_lines[0].reference", "R" * 256), ("order_lines[0].quantity_unit", "kilograms"),
    ("options.color_button", "orange"), ("customer.date_of_birth", "1995-02-30"),
])
def test_an_update_is_held_to_the_same_schema_and_changes_nothing(sandbox, field, value):
    location = create(sandbox, MAXIMAL).headers["Location"]
    broken = with_value(MAXIMAL, field, value)
    top = re.split(r"[.\[]", field)[0]
    resp = sandbox.post(location, json={top: broken[top]}, headers=AUTH)
    assert resp.status_code == 400 and f"Bad value: {field}" in resp.get_json()["error_messages"]
    assert sandbox.get(location, headers=AUTH).get_json()[top] == MAXIMAL[top]


def test_http_callback_urls_pass_only_on_loopback_or_when_the_sandbox_allows_them():
    order = with_value(MAXIMAL, "merchant_urls.validation", "http://shop.example/kco/validation")
    strict = create_sandbox({"SANDBOX_USERNAME": "sandbox", "SANDBOX_PASSWORD": "sandbox"})
    assert create(strict.test_client(), order).status_code == 400
    lenient = create_sandbox({"SANDBOX_USERNAME": "sandbox", "SANDBOX_PASSWORD": "sandbox",
                              "SANDBOX_ALLOW_HTTP_CALLBACKS": True})
    assert create(lenient.test_client(), order).status_code == 201
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        local = with_value(MAXIMAL, "merchant_urls.validation", f"http://{host}/kco/validation")
        assert create(strict.test_client(), local).status_code == 201


# -- what kco-sync sends --------------------------------------------------------------------------
SHOP = load_shop(None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), country=st.sampled_from(sorted(SHOP.markets)),
       public=st.sampled_from(["http://127.0.0.1:8000", "https://shop.example"]))
def test_every_order_kco_sync_sends_is_one_the_sandbox_accepts(sandbox, data, country, public):
    market = SHOP.markets[country]
    items = data.draw(carts(SHOP, market.currency, max_lines=40))
    coupon = data.draw(st.sampled_from([None, *sorted(SHOP.coupons)]))
    try:
        state = checkout.new_state(SHOP, "web-1", country=country, items=items, coupon=coupon)
    except PricingError:
        assume(False)
    urls = Urls(public, f"{public}/terms", f"{public}/checkout", f"{public}/confirmation", "secret")
    payload = order_payload(SHOP, state, urls)
    resp = create(sandbox, payload)
    assert resp.status_code == 201, resp.get_json()
