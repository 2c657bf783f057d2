"""The callback log keeps no personal data, by allow-list: a field Klarna adds
later is scrubbed until someone decides it may be kept.

Klarna's whole Checkout API v3 order — every field of its schema, with a recognisable value in
each one no decision uses — goes through every callback; afterwards no table of the database
holds any of those values, and the log still replays.
"""
from __future__ import annotations

import copy
import itertools
import json

import pytest
import sqlalchemy as sa

from callbacks import create_app
from callbacks.klarna import scrub as scrubbing

from .conftest import kco_url
from .payloads import goods_line, shipping_service_body
from .servers import free_port

CALLBACKS = ["address_update", "shipping_option_update", "country_change", "validation",
             "notification", "push"]
_serial = itertools.count(1)
MARKERS: list[str] = []


def pii(name: str) -> str:
    """A value nobody else writes: if it is found anywhere afterwards, it was kept."""
    value = f"Pii{next(_serial):03d}x{name.replace('_', '').replace('.', '')[:20]}Q7"
    MARKERS.append(value)
    return value


def full_address(kind: str) -> dict:
    return {field: pii(f"{kind}.{field}") for field in (
        "given_name", "family_name", "organization_name", "email", "title", "street_address",
        "street_address2", "street_name", "street_number", "house_extension", "postal_code",
        "city", "phone", "care_of", "reference", "attention")} | {"country": "SE", "region": None}


def addon() -> dict:
    return {"type": pii("addon.type"), "price": 0, "external_id": pii("addon.external_id"),
            "user_input": pii("addon.user_input")}


def delivery_details() -> dict:
    return {"carrier": pii("dd.carrier"), "class": pii("dd.class"),
            "product": {"name": pii("dd.product.name"), "identifier": pii("dd.product.id")},
            "timeslot": {"id": pii("dd.timeslot.id"), "start": pii("dd.start"), "end": pii("dd.end")},
            "pickup_location": {"id": pii("dd.pickup.id"), "name": pii("dd.pickup.name"),
                                "address": full_address("pickup")}}


def shipping_option(option_id: str, price: int, tax: int) -> dict:
    return {"id": option_id, "name": pii("so.name"), "description": pii("so.description"),
            "promo": pii("so.promo"), "price": price, "tax_amount": tax, "tax_rate": 2500,
            "preselected": True, "shipping_method": pii("so.shipping_method"),
            "delivery_details": delivery_details(), "tms_reference": pii("so.tms_reference"),
            "selected_addons": [addon()], "addons": [addon()]}


def enrich_line(line: dict) -> dict:
    return {**line, "name": pii("line.name"), "quantity_unit": pii("qu")[:8],
            "merchant_data": pii("line.merchant_data"), "product_url": f"https://{pii('url')}.example/p",
            "image_url": f"https://{pii('img')}.example/i.png",
            "product_identifiers": {"category_path": pii("pi.category_path"),
                                    "global_trade_item_number": pii("pi.gtin"),
                                    "manufacturer_part_number": pii("pi.mpn"), "brand": pii("pi.brand"),
                                    "color": pii("pi.color"), "size": pii("pi.size")},
            "subscription": {"name": pii("sub.name"), "interval": "MONTH", "interval_count": 1},
            "shipping_attributes": {"weight": 1000, "tags": [pii("sa.tag")],
                                    "dimensions": {"height": 1, "width": 2, "length": 3}}}


def full_order(priced: dict, order_id: str) -> dict:
    """Klarna's order as Read Order returns it, around the lines we priced."""
    fee = next(line for line in priced["order_lines"] if line["type"] == "shipping_fee")
    merchant_url = f"https://shop.example/kco/push?session=s&token={pii('token')}&order_id={{checkout.order.id}}"
    return {
        "order_id": order_id, "name": pii("order.name"), "purchase_country": "SE",
        "purchase_currency": "SEK", "locale": "sv-SE", "status": "checkout_incomplete",
        "billing_address": full_address("billing"), "shipping_address": full_address("shipping"),
        "order_amount": priced["order_amount"], "order_tax_amount": priced["order_tax_amount"],
        "order_lines": [enrich_line(line) for line in priced["order_lines"]],
        "customer": {"date_of_birth": pii("dob"), "type": "person", "gender": pii("gender"),
                     "last_four_ssn": pii("ssn4"), "national_identification_number": pii("nin"),
                     "organization_registration_id": pii("orgid"), "vat_id": pii("vat"),
                     "organization_entity_type": pii("entity")},
        "merchant_urls": dict.fromkeys(("terms", "checkout", "confirmation", "push", "validation",
                                        "shipping_option_update", "address_update", "notification",
                                        "country_change"), merchant_url),
        "html_snippet": f"<div>{pii('snippet')}</div>",
        "merchant_reference1": pii("mref1"), "merchant_reference2": pii("mref2"),
        "started_at": pii("started"), "completed_at": pii("completed"), "last_modified_at": pii("modified"),
        "options": {"acquiring_channel": pii("opt.channel"), "color_button": pii("opt.color"),
                    "radius_border": pii("opt.radius"), "allow_separate_shipping_address": True,
                    "date_of_birth_mandatory": False, "require_validate_callback_success": True,
                    "allowed_customer_types": [pii("opt.ctype")],
                    "additional_checkbox": {"text": pii("cb.text"), "checked": False, "required": False},
                    "additional_checkboxes": [{"id": pii("cbs.id"), "text": pii("cbs.text"),
                                               "checked": False, "required": False}],
                    "shipping_details": pii("opt.shipping_details")},
        "attachment": {"content_type": "application/vnd.klarna.internal.emd-v2+json",
                       "body": json.dumps({"customer_account_info": [
                           {"unique_account_identifier": pii("uai"), "account_registration_date": pii("ard")}]})},
        "external_payment_methods": [{"name": pii("epm.name"), "redirect_url": f"https://{pii('epm')}.example",
                                      "image_url": f"https://{pii('epmi')}.example", "fee": 0,
                                      "description": pii("epm.description"), "countries": ["SE"],
                                      "label": pii("epm.label")}],
        "external_checkouts": [{"name": pii("ec.name"), "redirect_url": f"https://{pii('ec')}.example",
                                "image_url": f"https://{pii('eci')}.example", "fee": 0,
                                "description": pii("ec.description"), "countries": ["SE"],
                                "label": pii("ec.label")}],
        "shipping_countries": ["SE"], "billing_countries": ["SE"],
        "shipping_options": [shipping_option(fee["reference"], fee["unit_price"], fee["total_tax_amount"])],
        "merchant_data": pii("merchant_data"),
        "gui": {"options": [pii("gui.option")]},
        "merchant_requested": {"additional_checkbox": False,
                               "additional_checkboxes": [{"id": pii("mr.cb.id"), "checked": False}]},
        "selected_shipping_option": shipping_option(fee["reference"], fee["unit_price"], fee["total_tax_amount"]),
        "recurring": False, "recurring_token": pii("recurring_token"),
        "recurring_description": pii("recurring_description"),
        "billing_address_is_editable": True, "tags": [pii("tag")],
        "payment_type_allows_increase": False, "discounts": [pii("discount")],
        "shipping_details": [pii("shipping_details")],
        # What Klarna may add tomorrow, in its own spelling or another:
        "billingAddress": {"givenName": pii("camel.given"), "streetAddress": pii("camel.street")},
        "free_text": pii("free_text"), pii("as_key"): "x",
        "nested": {"deeper": [{"deepest": pii("deep"), "country": "SE"}]},
        "event_type": pii("event_type"),
    }


@pytest.fixture
def quiet_app(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "KLARNA_API_URL": f"http://127.0.0.1:{free_port()}", "KLARNA_RETRIES": 0,
                      "KLARNA_TIMEOUT": "0.5,0.5"})
    yield app
    app.extensions["kco"].store.dispose()


def dump_database(store) -> str:
    metadata = sa.MetaData()
    metadata.reflect(store.engine)
    with store.engine.connect() as conn:
        tables = {name: [[str(v) for v in row] for row in conn.execute(sa.select(table))]
                  for name, table in metadata.tables.items()}
    return json.dumps(tables, ensure_ascii=False)


def test_no_value_of_klarnas_full_order_is_kept_anywhere(quiet_app, shop):
    app, client, store = quiet_app, quiet_app.test_client(), quiet_app.extensions["kco"].store
    sid, order_id = "s-full", "0b7e4f9c-aaaa-4c6b-8e3f-5a9d2c7b1e40"
    priced = client.post(kco_url(app, "address_update", sid), json=shipping_service_body(
        [goods_line(shop, "HOODIE-GREY-L", 1, "SEK", 2500)])).get_json()
    MARKERS.clear()
    order = full_order(priced, order_id)
    assert len(MARKERS) > 100
    statuses = {}
    for callback in CALLBACKS:
        r = client.post(kco_url(app, callback, sid, order_id=order_id), json=copy.deepcopy(order))
        r.close()  # the push's after-reply work
        statuses[callback] = r.status_code
    assert statuses["validation"] == 200, statuses  # the full order was judged, not refused
    assert statuses["address_update"] == statuses["country_change"] == 200, statuses
    text = dump_database(store)
    assert "callback_log" in text and "Testperson" not in text
    kept = [m for m in MARKERS if m in text]
    assert kept == [], kept
    # What decisions and replay need is still there.
    logged = [scrubbing.readable(json.loads(r) if isinstance(r, str) else r)
              for r in _logged_requests(store)]
    validation = logged[CALLBACKS.index("validation") + 1]
    assert validation["order_id"] == order_id and validation["purchase_currency"] == "SEK"
    assert validation["billing_address"]["country"] == "SE" and validation["locale"] == "sv-SE"
    assert [(line["reference"], line["quantity"], line["unit_price"]) for line in validation["order_lines"]] \
        == [(line["reference"], line["quantity"], line["unit_price"]) for line in priced["order_lines"]]
    assert validation["selected_shipping_option"]["id"] == order["selected_shipping_option"]["id"]


def _logged_requests(store):
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.select(sa.text("request")).select_from(
            sa.table("callback_log")).order_by(sa.text("id")))]


def test_replay_from_the_scrubbed_log_still_decides_the_same(quiet_app, shop):
    app, client, store = quiet_app, quiet_app.test_client(), quiet_app.extensions["kco"].store
    priced = client.post(kco_url(app, "address_update", "s-rep"), json=shipping_service_body(
        [goods_line(shop, "HOODIE-GREY-L", 2, "SEK", 2500)])).get_json()
    order = full_order(priced, "ord-replay-1")
    for callback in ("address_update", "shipping_option_update", "validation"):
        assert client.post(kco_url(app, callback, "s-rep", order_id="ord-replay-1"),
                           json=order).status_code == 200
    ids = [str(i) for i in range(1, 5)]
    result = app.test_cli_runner().invoke(args=["kco", "replay", *itertools.chain.from_iterable(
        ("--from-log", i) for i in ids)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "4 sent, 4 ok"
    # A fresh session rebuilt from the scrubbed validation alone reaches the same verdict.
    result = app.test_cli_runner().invoke(args=["kco", "replay", "--from-log", "4", "--session", "s-new",
                                                "--order-id", "ord-replay-2"])
    assert result.exit_code == 0, result.output
    assert store.get_state("s-new")["validation"]["result"] == "passed"


def test_scrub_keeps_only_allowed_values_at_any_depth():
    scrubbed = scrubbing.scrub({"billing_address": {"country": "Sweden, Stockholm", "region": "ca"},
                              "order_lines": [{"reference": "SKU-1", "quantity": "3", "unit_price": 5,
                                               "name": "Anna"}],
                              "customer": {"last_four_ssn": "4321", "type": "person"},
                              "lastFourSsn": "4321", "a@b.example": 1, "email": "", "phone": None})
    assert scrubbed == {"billing_address": {"country": scrubbing.SCRUBBED, "region": "ca"},
                        "order_lines": [{"reference": "SKU-1", "quantity": scrubbing.SCRUBBED,
                                         "unit_price": 5, "name": scrubbing.SCRUBBED}],
                        "customer": scrubbing.SCRUBBED, "[scrubbed key 3]": scrubbing.SCRUBBED,
                        "[scrubbed key 4]": scrubbing.SCRUBBED, "email": "", "phone": None}
