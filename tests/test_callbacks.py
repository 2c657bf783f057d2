"""Klarna's four synchronous callbacks (docs/design.md §6.2), as Klarna would call them."""
from __future__ import annotations

import copy

import pytest

from callbacks.rules import amounts as rules

from .payloads import goods_line, shipping_service_body, validation_body


def replied_order_ok(reply) -> None:
    assert rules.shipping_service_reply_errors(reply) == []


# -- address_update --------------------------------------------------------------------------
def test_address_update_reprices_an_unknown_session_from_the_body(klarna, shop):
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 2, "SEK", 2500)])
    r = klarna("address_update", "s-1", body)
    assert r.status_code == 200
    reply = r.get_json()
    assert set(reply) == {"order_amount", "order_tax_amount", "order_lines", "purchase_currency",
                          "shipping_options", "locale"}
    replied_order_ok(reply)
    assert reply["purchase_currency"] == "SEK" and reply["locale"] == "sv-SE"
    goods = [line for line in reply["order_lines"] if line["type"] == "physical"]
    assert goods[0]["reference"] == "TSHIRT-BLUE-M" and goods[0]["quantity"] == 2
    assert goods[0]["unit_price"] == shop.products["TSHIRT-BLUE-M"].prices["SEK"]
    fee = [line for line in reply["order_lines"] if line["type"] == "shipping_fee"]
    assert len(fee) == 1 and fee[0]["reference"] in {o["id"] for o in reply["shipping_options"]}


def test_address_update_uses_the_stored_cart_not_the_body(klarna, shop, store):
    klarna("address_update", "s-2", shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]))
    # Klarna's copy of the cart is stale: it still says 5. The session's cart wins.
    r = klarna("address_update", "s-2", shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 5, "SEK", 2500)]))
    goods = [line for line in r.get_json()["order_lines"] if line["type"] == "physical"]
    assert goods[0]["quantity"] == 1
    assert store.get_state("s-2")["cart"]["items"] == [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]


def test_shipping_to_a_reduced_rate_country_changes_tax_not_price(klarna, shop):
    """Gross prices stay; only the tax part follows the tax country (docs/design.md §5.2)."""
    lines = [goods_line(shop, "COFFEE-DARK-500", 1, "EUR", 2550)]
    fi = klarna("address_update", "s-3", shipping_service_body(lines, currency="EUR", country="FI", locale="fi-FI")).get_json()
    de = klarna("address_update", "s-3", shipping_service_body(lines, currency="EUR", country="DE", locale="fi-FI")).get_json()
    fi_line = next(line for line in fi["order_lines"] if line["reference"] == "COFFEE-DARK-500")
    de_line = next(line for line in de["order_lines"] if line["reference"] == "COFFEE-DARK-500")
    assert fi_line["unit_price"] == de_line["unit_price"] == shop.products["COFFEE-DARK-500"].prices["EUR"]
    assert fi_line["tax_rate"] == shop.markets["FI"].tax["reduced"]
    assert de_line["tax_rate"] == shop.markets["DE"].tax["reduced"]
    assert fi_line["total_tax_amount"] != de_line["total_tax_amount"]
    replied_order_ok(fi)
    replied_order_ok(de)


def test_us_shipping_address_gets_one_sales_tax_line_by_state(klarna, shop):
    lines = [goods_line(shop, "TSHIRT-BLUE-M", 2, "USD", 0)]
    body = shipping_service_body(lines, currency="USD", country="US", locale="en-US", region="ca")
    reply = klarna("address_update", "s-us", body).get_json()
    replied_order_ok(reply)
    taxes = [line for line in reply["order_lines"] if line["type"] == "sales_tax"]
    assert len(taxes) == 1 and taxes[0]["reference"] == "sales_tax"
    assert all(line["tax_rate"] == 0 for line in reply["order_lines"])
    taxable = sum(line["total_amount"] for line in reply["order_lines"] if line["type"] != "sales_tax")
    rate = shop.markets["US"].sales_tax["CA"]  # tax_shipping = true in the example shop
    assert taxes[0]["total_amount"] == (2 * taxable * rate + 10000) // 20000
    assert reply["order_tax_amount"] == taxes[0]["total_amount"]


def test_lowercase_country_codes_are_accepted(klarna, shop):
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    body["billing_address"]["country"] = "se"
    body["shipping_address"]["country"] = "se"
    body["purchase_currency"] = "sek"
    r = klarna("address_update", "s-lc", body)
    assert r.status_code == 200
    assert r.get_json()["purchase_currency"] == "SEK"
    replied_order_ok(r.get_json())


def test_unsupported_shipping_country(klarna, shop, store):
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    body["shipping_address"]["country"] = "JP"
    r = klarna("address_update", "s-jp", body)
    assert r.status_code == 400
    assert r.get_json()["error_type"] == "unsupported_shipping_address"
    assert r.get_json()["error_text"] == "Tyvärr levererar vi inte till Japan."  # sv-SE body
    assert store.get_state("s-jp") is None and store.events_after(0) == []


def test_billing_country_without_a_market_is_an_address_error(klarna, shop):
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    body["billing_address"]["country"] = "BR"
    r = klarna("country_change", "s-br", body)
    assert r.status_code == 400 and r.get_json()["error_type"] == "address_error"
    assert r.get_json()["error_text"]


@pytest.mark.parametrize("callback", ["address_update", "shipping_option_update", "country_change", "validation"])
def test_unknown_sku_is_approval_failed(klarna, shop, store, callback):
    line = goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)
    line["reference"] = "NO-SUCH-SKU"
    body = validation_body([line]) if callback == "validation" else shipping_service_body([line])
    r = klarna(callback, "s-unk", body)
    assert r.status_code == 400
    assert r.get_json()["error_type"] == "approval_failed"
    assert "NO-SUCH-SKU" in str(r.get_json()["errors"])
    assert store.get_state("s-unk") is None


def test_no_price_in_the_currency_is_approval_failed(klarna, shop):
    sku = next(p.sku for p in shop.products.values() if "USD" not in p.prices)
    line = goods_line(shop, sku, 1, "USD", 0)
    r = klarna("address_update", "s-np", shipping_service_body([line], currency="USD", country="US", locale="en-US"))
    assert r.status_code == 400 and r.get_json()["error_type"] == "approval_failed"
    assert sku in str(r.get_json()["errors"])


# -- malformed bodies ------------------------------------------------------------------------
BAD_BODIES = {
    "not json": b"{order_amount: 1",
    "json array": b"[1, 2]",
    "json string": b'"hello"',
    "empty": b"",
    "not utf-8": b"\xff\xfe\x00{",
}


@pytest.mark.parametrize("callback", ["address_update", "shipping_option_update", "country_change", "validation"])
@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_malformed_bodies_are_approval_failed_never_500(klarna, store, callback, name):
    r = klarna(callback, "s-bad", data=BAD_BODIES[name])
    assert r.status_code == 400, r.data
    body = r.get_json()
    assert body["error_type"] == "approval_failed" and body["error_text"] and body["errors"]
    assert store.get_state("s-bad") is None


def _mutations(shop):
    good = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    cases = {}

    def case(name, fn, field):
        body = copy.deepcopy(good)
        fn(body)
        cases[name] = (body, field)

    case("order_amount is a string", lambda b: b.update(order_amount="100"), "order_amount")
    case("order_amount is a float", lambda b: b.update(order_amount=10.5), "order_amount")
    case("order_amount is a boolean", lambda b: b.update(order_amount=True), "order_amount")
    case("order_amount missing", lambda b: b.pop("order_amount"), "order_amount")
    case("order_lines missing", lambda b: b.pop("order_lines"), "order_lines")
    case("order_lines not a list", lambda b: b.update(order_lines={"a": 1}), "order_lines")
    case("purchase_currency missing", lambda b: b.pop("purchase_currency"), "purchase_currency")
    case("purchase_currency malformed", lambda b: b.update(purchase_currency="SE"), "purchase_currency")
    case("quantity negative", lambda b: b["order_lines"][0].update(quantity=-1), "order_lines")
    case("quantity a string", lambda b: b["order_lines"][0].update(quantity="2"), "order_lines")
    case("quantity missing", lambda b: b["order_lines"][0].pop("quantity"), "order_lines")
    case("billing country malformed", lambda b: b["billing_address"].update(country="SWE"), "billing_address")
    case("address not an object", lambda b: b.update(shipping_address="SE"), "shipping_address")
    case("locale malformed", lambda b: b.update(locale="sv_SE"), "locale")
    case("more than 1000 lines", lambda b: b.update(order_lines=b["order_lines"] * 1001), "order_lines")
    return cases


@pytest.mark.parametrize("callback", ["address_update", "shipping_option_update", "country_change", "validation"])
def test_wrong_types_and_missing_fields_name_the_field(klarna, shop, store, callback):
    for name, (body, field) in _mutations(shop).items():
        r = klarna(callback, "s-types", body)
        assert r.status_code == 400, (name, r.data)
        reply = r.get_json()
        assert reply["error_type"] == "approval_failed", name
        assert field in reply["errors"], (name, reply)
    assert store.get_state("s-types") is None and store.events_after(0) == []


def test_body_over_one_mebibyte_is_413(klarna, shop, store):
    body = b'{"order_lines": [], "padding": "' + b"x" * (1024 * 1024) + b'"}'
    r = klarna("address_update", "s-big", data=body)
    assert r.status_code == 413
    assert r.get_json()["code"] == 413 and r.get_json()["message"]
    assert store.get_state("s-big") is None


@pytest.mark.parametrize("token", [None, "", "wrong", "A" * 43])
@pytest.mark.parametrize("callback", ["address_update", "shipping_option_update", "country_change", "validation"])
def test_missing_or_wrong_token_is_401_and_records_nothing(app, client, shop, store, callback, token):
    from .conftest import kco_url
    url = kco_url(app, callback, "s-tok", token=token)
    if token is None:
        url = url.split("&token=")[0]
    r = client.post(url, json=shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]))
    assert r.status_code == 401
    assert r.get_json()["code"] == 401 and r.get_json()["status"] == "Unauthorized"
    assert store.get_state("s-tok") is None and store.events_after(0) == []


def test_a_token_for_another_session_is_refused(app, client, shop, store):
    from .conftest import kco_url
    other = kco_url(app, "address_update", "s-other").split("token=")[1]
    url = kco_url(app, "address_update", "s-victim", token=other)
    r = client.post(url, json=shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]))
    assert r.status_code == 401 and store.get_state("s-victim") is None


def test_bad_session_id_with_its_own_token_is_400(klarna, shop):
    r = klarna("address_update", "bad id/x", shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]))
    assert r.status_code == 400 and "session" in r.get_json()["errors"]


# -- shipping_option_update ------------------------------------------------------------------
def test_shipping_option_choice_moves_the_fee_line(klarna, shop, store):
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    first = klarna("address_update", "s-ship", body).get_json()
    other = next(o for o in first["shipping_options"] if not o["preselected"])
    body["selected_shipping_option"] = {"id": other["id"], "name": other["name"], "price": other["price"],
                                        "tax_amount": other["tax_amount"], "tax_rate": other["tax_rate"]}
    reply = klarna("shipping_option_update", "s-ship", body).get_json()
    replied_order_ok(reply)
    fee = [line for line in reply["order_lines"] if line["type"] == "shipping_fee"]
    assert [f["reference"] for f in fee] == [other["id"]]
    assert fee[0]["total_amount"] == other["price"]
    assert [o["id"] for o in reply["shipping_options"] if o["preselected"]] == [other["id"]]
    assert reply["order_amount"] == first["order_amount"] - first_fee(first) + other["price"]
    assert store.get_state("s-ship")["selected_shipping_option"] == other["id"]
    assert [e["type"] for e in store.events_after(0)] == ["address_updated", "shipping_option_selected"]


def first_fee(reply):
    return next(line["total_amount"] for line in reply["order_lines"] if line["type"] == "shipping_fee")


def test_an_option_not_offered_falls_back_to_the_preselected_one(klarna, shop):
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    body["selected_shipping_option"] = {"id": "teleport"}
    reply = klarna("shipping_option_update", "s-tele", body).get_json()
    preselected = next(o.id for o in shop.markets["SE"].shipping if o.preselected)
    assert [o["id"] for o in reply["shipping_options"] if o["preselected"]] == [preselected]


# -- country_change --------------------------------------------------------------------------
def test_country_change_se_to_fi_switches_currency_locale_and_vat(klarna, shop, store):
    lines = [goods_line(shop, "TSHIRT-BLUE-M", 2, "SEK", 2500)]
    klarna("address_update", "s-fi", shipping_service_body(lines))
    body = shipping_service_body(lines, country="FI")  # Klarna still sends SEK and sv-SE
    assert body["purchase_currency"] == "SEK" and body["locale"] == "sv-SE"
    r = klarna("country_change", "s-fi", body)
    assert r.status_code == 200
    reply = r.get_json()
    replied_order_ok(reply)
    assert reply["purchase_currency"] == "EUR"
    assert reply["locale"] == "sv-FI"  # the shopper's language is kept where the market has it
    tshirt = next(line for line in reply["order_lines"] if line["reference"] == "TSHIRT-BLUE-M")
    assert tshirt["unit_price"] == shop.products["TSHIRT-BLUE-M"].prices["EUR"]  # the catalogue, no FX
    assert tshirt["tax_rate"] == shop.markets["FI"].tax["standard"]
    assert {o["id"] for o in reply["shipping_options"]} <= {o.id for o in shop.markets["FI"].shipping}
    state = store.get_state("s-fi")
    assert state["market"] == {"country": "FI", "currency": "EUR", "locale": "sv-FI"}
    assert state["purchase_country"] == "SE" and state["pending_purchase_country"] == "FI"
    changed = [e for e in store.events_after(0) if e["type"] == "market_changed"]
    assert len(changed) == 1
    assert changed[0]["data"]["market"]["old"]["currency"] == "SEK"
    assert changed[0]["data"]["market"]["new"]["currency"] == "EUR"
    assert changed[0]["version"] == state["version"]


def test_country_change_to_a_language_the_market_lacks_uses_its_default_locale(klarna, shop):
    lines = [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]
    body = shipping_service_body(lines, country="DE")
    body["locale"] = "fi-FI"
    reply = klarna("country_change", "s-de", body).get_json()
    assert reply["locale"] == shop.markets["DE"].default_locale
    assert reply["purchase_currency"] == "EUR"


def test_country_change_with_a_product_not_sold_in_the_new_currency(klarna, shop, store):
    sku = next(p.sku for p in shop.products.values() if "CHF" not in p.prices)
    currency = shop.markets["SE"].currency
    lines = [goods_line(shop, sku, 1, currency, 600)]
    klarna("address_update", "s-ch", shipping_service_body(lines))
    before = store.get_state("s-ch")
    r = klarna("country_change", "s-ch", shipping_service_body(lines, country="CH"))
    assert r.status_code == 400 and r.get_json()["error_type"] == "approval_failed"
    assert store.get_state("s-ch") == before  # nothing half-written


def test_repeating_a_callback_records_nothing_new(klarna, shop, store):
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    first = klarna("address_update", "s-rep", body).get_json()
    second = klarna("address_update", "s-rep", body).get_json()
    assert first == second
    assert [e["type"] for e in store.events_after(0)] == ["address_updated"]
    assert store.get_state("s-rep")["version"] == 1


# -- validation ------------------------------------------------------------------------------
def _priced_validation_body(klarna, shop, sid, lines, **kw):
    reply = klarna("address_update", sid, shipping_service_body(lines, **kw)).get_json()
    return validation_body(reply["order_lines"], currency=reply["purchase_currency"],
                           country=kw.get("country", "SE"), order_amount=reply["order_amount"],
                           order_tax_amount=reply["order_tax_amount"])


def test_validation_passes_when_klarna_has_our_cart(klarna, shop, store):
    body = _priced_validation_body(klarna, shop, "s-val", [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    r = klarna("validation", "s-val", body, order_id=body["order_id"])
    assert r.status_code == 200 and r.data == b""
    state = store.get_state("s-val")
    assert state["validation"]["result"] == "passed"
    assert state["klarna"]["order_id"] == body["order_id"]
    assert store.events_after(0)[-1]["type"] == "validation_passed"


def test_validation_of_a_changed_cart_redirects_with_303(app, klarna, shop, store):
    body = _priced_validation_body(klarna, shop, "s-chg", [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    body["order_lines"][0]["quantity"] = 3  # the shopper changed the cart in another tab
    r = klarna("validation", "s-chg", body)
    assert r.status_code == 303
    assert r.headers["Location"] == app.config["KCO_CHECKOUT_URL"] + "?kco_error=cart_changed"
    assert store.events_after(0)[-1]["type"] == "validation_failed"
    assert store.events_after(0)[-1]["data"]["reason"] == "cart_changed"


def test_validation_with_wrong_amount_redirects(klarna, shop):
    body = _priced_validation_body(klarna, shop, "s-amt", [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    body["order_amount"] -= 100
    assert klarna("validation", "s-amt", body).status_code == 303


def test_validation_out_of_stock_is_approval_failed(klarna, shop, store):
    sku = next(p.sku for p in shop.products.values() if p.stock == 0)
    body = _priced_validation_body(klarna, shop, "s-oos", [goods_line(shop, sku, 1, "SEK", 2500)])
    r = klarna("validation", "s-oos", body)
    assert r.status_code == 400
    assert r.get_json()["error_type"] == "approval_failed"
    assert shop.products[sku].display_name("sv") in r.get_json()["error_text"]
    assert store.get_state("s-oos")["validation"]["reason"] == "out_of_stock"


def test_validation_more_than_stock(klarna, shop):
    product = next(p for p in shop.products.values() if p.stock and p.stock > 0)
    body = _priced_validation_body(klarna, shop, "s-few", [goods_line(shop, product.sku, product.stock + 1, "SEK", 600)])
    r = klarna("validation", "s-few", body)
    assert r.status_code == 400 and str(product.stock) in r.get_json()["error_text"]


def test_identical_validations_get_identical_replies_and_one_event(klarna, shop, store):
    body = _priced_validation_body(klarna, shop, "s-dup", [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    replies = {(r.status_code, r.data) for r in (klarna("validation", "s-dup", body) for _ in range(5))}
    assert replies == {(200, b"")}
    assert [e["type"] for e in store.events_after(0)].count("validation_passed") == 1


def test_validation_for_an_unknown_session_checks_the_bodys_own_cart(klarna, shop):
    """A replayed sample: the cart is the body's goods lines, priced by our catalogue."""
    lines = [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]
    probe = klarna("address_update", "probe", shipping_service_body(lines)).get_json()
    body = validation_body(probe["order_lines"], currency="SEK", country="SE",
                           order_amount=probe["order_amount"], order_tax_amount=probe["order_tax_amount"])
    assert klarna("validation", "fresh", body).status_code == 200
    body["order_id"] = "another-order"  # the first one is fresh's now
    body["order_lines"][0]["unit_price"] = 1  # a tampered price does not match our catalogue
    body["order_lines"][0]["total_amount"] = 1
    body["order_amount"] = sum(line["total_amount"] for line in body["order_lines"])
    assert klarna("validation", "fresh-2", body).status_code == 303


def test_no_500_for_get_on_a_callback(app, client):
    from .conftest import kco_url
    r = client.get(kco_url(app, "address_update", "s"))
    assert r.status_code == 405 and r.get_json()["code"] == 405


# The order Klarna holds must be the one we priced: right goods, currency and order_amount are
# not enough; every line and both totals.
def _gift_card(body):
    body["order_lines"].append({"type": "gift_card", "reference": "GC-1", "name": "Gift card",
                                "quantity": 1, "unit_price": -500, "tax_rate": 0,
                                "total_amount": -500, "total_discount_amount": 0,
                                "total_tax_amount": 0})


def _surcharge(body):
    body["order_lines"].append({"type": "surcharge", "reference": "fee", "name": "Invoice fee",
                                "quantity": 1, "unit_price": 0, "tax_rate": 0, "total_amount": 0,
                                "total_discount_amount": 0, "total_tax_amount": 0})


def _set(index, field, value):
    def change(body):
        body["order_lines"][index][field] = value
    return change


VALIDATION_TAMPERING = {
    "order_tax_amount 0": lambda b: b.update(order_tax_amount=0),
    "order_tax_amount one more": lambda b: b.update(order_tax_amount=b["order_tax_amount"] + 1),
    "extra gift_card line": _gift_card,
    "extra zero surcharge line": _surcharge,
    "unit_price changed, totals kept": _set(0, "unit_price", 1),
    "tax_rate changed": _set(0, "tax_rate", 1200),
    "line tax off by 2": lambda b: _set(0, "total_tax_amount", b["order_lines"][0]["total_tax_amount"] + 2)(b),
    "discount added": _set(0, "total_discount_amount", 100),
    "line total changed": _set(0, "total_amount", 1),
    "type changed": _set(0, "type", "digital"),
    "reference changed": _set(0, "reference", "HOODIE-GREY-L"),
    "shipping line missing": lambda b: b["order_lines"].pop(),
    "a goods line missing": lambda b: b["order_lines"].pop(0),
    "a goods line twice": lambda b: b["order_lines"].insert(0, copy.deepcopy(b["order_lines"][0])),
}


@pytest.mark.parametrize("tampering", list(VALIDATION_TAMPERING))
def test_validation_refuses_any_line_or_total_klarna_holds_that_we_did_not_price(
        klarna, shop, store, tampering):
    lines = [goods_line(shop, "TSHIRT-BLUE-M", 2, "SEK", 2500), goods_line(shop, "TOTE-CANVAS", 1, "SEK", 2500)]
    body = _priced_validation_body(klarna, shop, "s-tamper", lines)
    assert body["order_lines"][-1]["type"] == "shipping_fee"
    assert klarna("validation", "s-tamper", copy.deepcopy(body)).status_code == 200
    VALIDATION_TAMPERING[tampering](body)
    r = klarna("validation", "s-tamper", body)
    assert r.status_code == 303 and r.headers["Location"].endswith("kco_error=cart_changed")
    assert store.get_state("s-tamper")["validation"]["reason"] == "cart_changed"


def test_validation_allows_one_minor_unit_of_tax_rounding_on_a_line(klarna, shop):
    body = _priced_validation_body(klarna, shop, "s-round", [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    body["order_lines"][0]["total_tax_amount"] += 1
    assert klarna("validation", "s-round", body).status_code == 200


def test_a_known_session_is_priced_from_its_own_cart_not_from_klarnas_lines(klarna, shop, store):
    """Klarna echoes the lines we sent; a body claiming other goods (a forged or stale copy)
    changes nothing in what the session sells, and a copy that is not a list of objects is
    still refused by its shape."""
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    assert klarna("address_update", "s-own", body).status_code == 200
    forged = copy.deepcopy(body)
    forged["order_lines"][0].update(reference="MUG-ENAMEL", quantity=50, unit_price=1)
    r = klarna("address_update", "s-own", forged)
    assert r.status_code == 200, r.data
    goods = [(line["reference"], line["quantity"]) for line in r.get_json()["order_lines"]
             if line["type"] == "physical"]
    assert goods == [("TSHIRT-BLUE-M", 1)]
    for lines in ([1, 2], "TSHIRT", [["TSHIRT"]]):
        r = klarna("address_update", "s-own", {**body, "order_lines": lines})
        assert r.status_code == 400 and "order_lines" in r.get_json()["errors"], (lines, r.data)
