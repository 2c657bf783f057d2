"""The catalog in the database: import (CSV, JSON Lines), the catalog API, pricing through the
cache, and a price change reaching another worker. Every test runs on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import time

import pytest

from callbacks import create_app
from callbacks.rules.shop import parse_shop

from .payloads import shipping_service_body, validation_body

HEADER = "reference,name,name_sv,tax_class,type,stock,price_SEK,price_EUR\n"
GOOD_CSV = HEADER + ("LAMP-1,Desk lamp,Skrivbordslampa,standard,physical,5,49900,4990\n"
                     "EBOOK-1,Cookbook (e-book),Kokbok,books,digital,,9900,990\n")


@pytest.fixture(autouse=True)
def _stop_listener(app):
    yield
    app.extensions["kco_notify"].stop()


@pytest.fixture
def run_import(app, tmp_path):
    def run(text: str, name: str = "catalog.csv"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return app.test_cli_runner().invoke(args=["kco", "catalog", "import", str(path)])
    return run


def line(sku, quantity, unit, tax_rate, type_="physical"):
    total = unit * quantity
    tax = total - (2 * total * 10000 + (10000 + tax_rate)) // (2 * (10000 + tax_rate))
    return {"type": type_, "reference": sku, "name": sku, "quantity": quantity, "unit_price": unit,
            "tax_rate": tax_rate, "total_amount": total, "total_discount_amount": 0,
            "total_tax_amount": tax}


def put_cart(client, api_headers, sid, *items):
    return client.put(f"/api/sessions/{sid}/cart", headers=api_headers,
                      json={"items": [{"reference": r, "quantity": q} for r, q in items]})


# -- import --------------------------------------------------------------------------------------
def test_imported_products_are_sold_at_their_prices_and_names(client, api_headers, run_import, shop):
    result = run_import(GOOD_CSV)
    assert result.exit_code == 0, result.output
    assert "2 new, 0 changed, 0 unchanged" in result.output
    response = put_cart(client, api_headers, "s-lamp", ("LAMP-1", 2), ("EBOOK-1", 1))
    assert response.status_code == 200, response.get_json()
    lines = {ln["reference"]: ln for ln in response.get_json()["order"]["order_lines"]}
    assert lines["LAMP-1"]["unit_price"] == 49900 and lines["LAMP-1"]["tax_rate"] == 2500
    assert lines["LAMP-1"]["name"] == "Skrivbordslampa"  # the session's locale is sv-SE
    assert lines["EBOOK-1"]["type"] == "digital" and lines["EBOOK-1"]["tax_rate"] == 600
    assert shop.products["TSHIRT-BLUE-M"].prices["SEK"] == 19900  # the shop file's still sell


def test_json_lines_take_the_same_keys(client, api_headers, run_import):
    rows = [{"reference": "MUG-2", "name": "Mug", "tax_class": "standard", "price_SEK": 12900,
             "name_de": "Becher", "stock": 3}]
    result = run_import("\n".join(json.dumps(r) for r in rows) + "\n", "catalog.jsonl")
    assert result.exit_code == 0, result.output
    assert put_cart(client, api_headers, "s-mug", ("MUG-2", 1)).get_json()["order"]["order_amount"] >= 12900


def test_importing_the_same_file_again_changes_nothing(run_import, store):
    run_import(GOOD_CSV)
    again = run_import(GOOD_CSV)
    assert again.exit_code == 0
    assert "0 new, 0 changed, 2 unchanged; catalog version 1" in again.output
    changed = run_import(GOOD_CSV.replace("49900,4990", "44900,4490"))
    assert "0 new, 1 changed, 1 unchanged; catalog version 2" in changed.output


def test_a_bad_file_names_every_rejected_row_and_field_and_imports_nothing(run_import, client, api_headers):
    bad = HEADER + ("OK-1,Fine,Bra,standard,physical,1,100,10\n"
                    "BAD-1,Lamp,,nosuchclass,physical,1,100,10\n"
                    "BAD-2,Lamp,,standard,plastic,-1,12.5,10\n"
                    "OK-1,Twice,,standard,physical,1,100,10\n"
                    ",No reference,,standard,physical,1,100,10\n")
    result = run_import(bad)
    assert result.exit_code == 1
    out = result.output
    assert "row 3 (BAD-1): tax_class: Tax class 'nosuchclass' has no rate in" in out
    assert "row 4 (BAD-2)" in out and "price_SEK: Not a whole number." in out
    assert "row 5 (OK-1): reference: Also on row 2." in out
    assert "row 6" in out and "reference" in out
    assert "nothing imported" in out
    assert put_cart(client, api_headers, "s-ok", ("OK-1", 1)).status_code == 422  # not half-imported


def test_a_bad_row_lists_every_bad_field_not_only_the_first(run_import):
    """A merchant fixing a file should not need one import per mistake of the same row."""
    bad = HEADER + ("BAD-2,Lamp,,standard,plastic,-1,12.5,10\n"
                    "BAD-3,,,nosuchclass,physical,x,100,0\n")
    out = run_import(bad).output
    row2 = next(line for line in out.splitlines() if line.lstrip().startswith("row 2"))
    for field in ("type:", "stock:", "price_SEK: Not a whole number."):
        assert field in row2, (field, row2)
    row3 = next(line for line in out.splitlines() if line.lstrip().startswith("row 3"))
    for field in ("name:", "tax_class: Tax class 'nosuchclass'", "stock: Not a whole number.", "price_EUR:"):
        assert field in row3, (field, row3)
    assert "prices" not in row2 + row3  # the bad price column is named, not a missing "prices"


@pytest.mark.parametrize("text,name,words", [
    ("name,price_SEK\nx,1\n", "c.csv", "the header lacks reference, tax_class"),
    ("", "c.csv", "empty file"),
    ("x", "c.txt", "unknown format"),
])
def test_a_file_that_cannot_be_read_is_exit_2(run_import, text, name, words):
    result = run_import(text, name)
    assert result.exit_code == 2 and words in result.output


def test_json_lines_rows_that_are_not_objects_are_named(run_import):
    result = run_import('{"reference": "A", "name": "A", "tax_class": "standard", "price_SEK": 1}\n'
                        "[1, 2]\n{nope\n", "c.jsonl")
    assert result.exit_code == 1
    assert "row 2: _row: Not a JSON object." in result.output and "row 3: _row: Not valid JSON" in result.output


# -- the API -------------------------------------------------------------------------------------
PRODUCT = {"name": "Desk lamp", "names": {"sv": "Skrivbordslampa"}, "tax_class": "standard",
           "prices": {"SEK": 49900}, "stock": 4}


def test_put_creates_then_updates_a_product(client, api_headers):
    first = client.put("/api/catalog/products/LAMP-9", json=PRODUCT, headers=api_headers)
    assert first.status_code == 201 and first.get_json()["product"]["prices"] == {"SEK": 49900}
    same = client.put("/api/catalog/products/LAMP-9", json=PRODUCT, headers=api_headers)
    assert same.status_code == 200 and same.get_json()["unchanged"] == 1
    cheaper = client.put("/api/catalog/products/LAMP-9", json={**PRODUCT, "prices": {"SEK": 39900}},
                         headers=api_headers)
    assert cheaper.get_json()["updated"] == 1
    assert client.get("/api/catalog/products/LAMP-9", headers=api_headers).get_json()["product"]["prices"] == {"SEK": 39900}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic c3VwcG9ydDp4"}])
def test_the_catalog_api_needs_the_api_key(client, headers):
    response = client.put("/api/catalog/products/LAMP-9", json=PRODUCT, headers=headers)
    assert response.status_code == 401 and response.get_json()["code"] == 401
    assert client.post("/api/catalog/products", json={"products": [PRODUCT]}, headers=headers).status_code == 401


@pytest.mark.parametrize("body,field", [
    ({**PRODUCT, "prices": {}}, "prices"), ({**PRODUCT, "prices": {"SEK": 0}}, "prices.SEK"),
    ({**PRODUCT, "prices": {"sek": 100}}, "prices.sek"), ({**PRODUCT, "stock": -1}, "stock"),
    ({**PRODUCT, "tax_class": "luxury"}, "tax_class"), ({**PRODUCT, "colour": "red"}, "colour"),
    ({**PRODUCT, "names": {"swedish": "x"}}, "names.swedish"), ({**PRODUCT, "type": "service"}, "type"),
    ([PRODUCT], "_schema"),
])
def test_a_bad_product_is_refused_with_the_field_named(client, api_headers, body, field):
    response = client.put("/api/catalog/products/LAMP-9", json=body, headers=api_headers)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]
    assert client.get("/api/catalog/products/LAMP-9", headers=api_headers).status_code == 404


def test_bulk_is_all_or_nothing(client, api_headers):
    good = {**PRODUCT, "reference": "BULK-1"}
    bad = {**PRODUCT, "reference": "BULK-2", "prices": {"SEK": "cheap"}}
    refused = client.post("/api/catalog/products", json={"products": [good, bad]}, headers=api_headers)
    assert refused.status_code == 422 and "products.1.prices.SEK" in refused.get_json()["errors"]
    assert client.get("/api/catalog/products/BULK-1", headers=api_headers).status_code == 404
    done = client.post("/api/catalog/products", json={"products": [good, {**good, "reference": "BULK-3"}]},
                       headers=api_headers)
    assert done.status_code == 200 and done.get_json()["inserted"] == 2


def test_bulk_refuses_bad_json_and_bad_shapes(client, api_headers):
    assert client.post("/api/catalog/products", data="{", headers={**api_headers, "Content-Type": "application/json"}).status_code == 400
    assert client.post("/api/catalog/products", json={"items": []}, headers=api_headers).status_code == 422
    assert client.post("/api/catalog/products", json={"products": []}, headers=api_headers).status_code == 422


# -- price changes reach carts and every worker --------------------------------------------------
def test_a_price_change_reprices_the_next_callback_and_denies_validation_of_the_old_price(
        app, client, api_headers, klarna, store):
    client.put("/api/catalog/products/LAMP-9", json=PRODUCT, headers=api_headers)
    put_cart(client, api_headers, "s-price", ("LAMP-9", 1))
    old = [line("LAMP-9", 1, 49900, 2500)]
    first = klarna("address_update", "s-price", shipping_service_body(old)).get_json()
    client.put("/api/catalog/products/LAMP-9", json={**PRODUCT, "prices": {"SEK": 59900}}, headers=api_headers)
    stale = validation_body(first["order_lines"], order_amount=first["order_amount"],
                            order_tax_amount=first["order_tax_amount"])
    denied = klarna("validation", "s-price", stale)
    assert denied.status_code == 303 and "cart_changed" in denied.headers["Location"]
    again = klarna("address_update", "s-price", shipping_service_body(old)).get_json()
    assert next(ln for ln in again["order_lines"] if ln["reference"] == "LAMP-9")["unit_price"] == 59900


def test_a_change_made_through_another_worker_is_seen_on_the_next_request(app, client, api_headers, database_url):
    other = create_app({"TESTING": True, "DATABASE_URL": database_url})  # another worker or instance
    try:
        client.put("/api/catalog/products/LAMP-9", json=PRODUCT, headers=api_headers)
        put = lambda: put_cart(client, api_headers, "s-two", ("LAMP-9", 1)).get_json()  # noqa: E731
        assert put()["order"]["order_lines"][0]["unit_price"] == 49900  # now cached here
        version = other.test_client().put("/api/catalog/products/LAMP-9", headers=api_headers,
                                          json={**PRODUCT, "prices": {"SEK": 29900}}).get_json()["version"]
        watch = app.extensions["kco_catalog"].watch  # PostgreSQL: wait for the notification
        deadline = time.monotonic() + 15
        while watch is not None and watch.live and watch.version < version and time.monotonic() < deadline:
            time.sleep(0.02)
        assert put()["order"]["order_lines"][0]["unit_price"] == 29900
    finally:
        other.extensions["kco_catalog"].stop()
        other.extensions["kco_notify"].stop()
        other.extensions["kco"].store.dispose()


def test_the_database_product_wins_over_the_shop_files(client, api_headers, shop):
    client.put("/api/catalog/products/TSHIRT-BLUE-M", headers=api_headers,
               json={**PRODUCT, "name": "Blue T-shirt, M", "prices": {"SEK": 17900}})
    lines = put_cart(client, api_headers, "s-tee", ("TSHIRT-BLUE-M", 1)).get_json()["order"]["order_lines"]
    assert lines[0]["unit_price"] == 17900


def test_a_shop_file_without_products_is_a_shop():
    shop = parse_shop({"shop": {"name": "Big", "default_country": "SE"},
                       "markets": {"SE": {"currency": "SEK", "locales": ["sv-SE"],
                                          "tax": {"standard": 2500}, "shipping_tax_class": "standard"}}})
    assert dict(shop.products) == {}


def test_unknown_sku_is_still_refused(client, api_headers):
    response = put_cart(client, api_headers, "s-none", ("NOPE-1", 1))
    assert response.status_code == 422 and "items.0.reference" in response.get_json()["errors"]


def test_a_writer_that_bypasses_the_service_is_seen_by_the_periodic_check(
        app, client, api_headers, store, monkeypatch):
    """A SQLite worker trusts the stamp file between checks of the version row; a writer that
    changes the table directly (SQL, another tool) is still seen once that time has passed."""
    import sqlalchemy as sa

    from callbacks.catalog import cache, table
    client.put("/api/catalog/products/LAMP-9", json=PRODUCT, headers=api_headers)
    assert put_cart(client, api_headers, "s-sql", ("LAMP-9", 1)).get_json()["order"]["order_lines"][0]["unit_price"] == 49900
    with store.write() as conn:
        version = conn.execute(table.catalog_state.update().values(version=table.catalog_state.c.version + 1)
                               .returning(table.catalog_state.c.version)).scalar_one()
        conn.execute(table.products.update().where(table.products.c.sku == "LAMP-9")
                     .values(prices={"SEK": 11100}, version=version, digest=sa.literal("x")))
    monkeypatch.setattr(cache, "RECHECK", 0.0)  # the time has passed
    assert put_cart(client, api_headers, "s-sql", ("LAMP-9", 2)).get_json()["order"]["order_lines"][0]["unit_price"] == 11100


# -- Klarna's shipping_attributes (the Shipping Assistant, docs/design.md §5.8) ---------------------
SHIPPING_CSV = ("reference,name,tax_class,price_SEK,price_EUR,shipping_weight,shipping_height,"
                "shipping_width,shipping_length,shipping_tags\n"
                "LAMP-2,Floor lamp,standard,99900,9990,4200,1500,300,300,\"bulky, fragile\"\n"
                "LAMP-3,Bulb,standard,4900,490,,,,,\n")


def test_shipping_attributes_come_from_the_catalog_to_a_shipping_assistant_order(app, run_import):
    from callbacks.klarna.order import order_payload
    from callbacks.rules import checkout
    from callbacks.rules.pricing import CartItem

    result = run_import(SHIPPING_CSV)
    assert result.exit_code == 0, result.output
    shop = app.extensions["kco"].shop
    assert shop.products["LAMP-3"].shipping_attributes is None
    state = {**checkout.new_state(shop, "s-at", country="AT",
                                  items=[CartItem("LAMP-2", 1), CartItem("LAMP-3", 1)]), "version": 1}
    lines = order_payload(shop, state, app.extensions["kco"].lifecycle.urls)["order_lines"]
    assert lines[0]["shipping_attributes"] == {"weight": 4200, "tags": ["bulky", "fragile"],
                                               "dimensions": {"height": 1500, "width": 300, "length": 300}}
    assert "shipping_attributes" not in lines[1]
    again = run_import(SHIPPING_CSV)
    assert "0 new, 0 changed, 2 unchanged" in again.output  # the attributes are part of the digest


def test_the_catalog_api_takes_and_shows_shipping_attributes(client, api_headers):
    body = {"name": "Kettle", "tax_class": "standard", "prices": {"SEK": 39900},
            "shipping_attributes": {"weight": 1300, "dimensions": {"height": 250}, "tags": ["hot"]}}
    put = client.put("/api/catalog/products/KETTLE-1", headers=api_headers, json=body)
    assert put.status_code == 201, put.get_json()
    got = client.get("/api/catalog/products/KETTLE-1", headers=api_headers).get_json()["product"]
    assert got["shipping_attributes"] == body["shipping_attributes"]
    bad = client.put("/api/catalog/products/KETTLE-1", headers=api_headers,
                     json={**body, "shipping_attributes": {"weight": -5}})
    assert bad.status_code == 422 and "shipping_attributes.weight" in bad.get_json()["errors"]
