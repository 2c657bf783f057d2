"""The storefront API (docs/design.md §7): auth, PUT cart, state + ETag, event feeds, markets, errors.

Every test runs on SQLite and on PostgreSQL (the `app` fixture is parametrized).
"""
from __future__ import annotations

import pytest

from callbacks.rules import checkout
from callbacks.rules.cart import set_cart
from callbacks.storefront import schemas
from callbacks.web.tokens import callback_token

TSHIRT, HOODIE, HONEY, MUG = "TSHIRT-BLUE-M", "HOODIE-GREY-L", "HONEY-WILDFLOWER-350", "MUG-ENAMEL"


@pytest.fixture(autouse=True)
def _stop_listener(app):
    yield
    app.extensions["kco_notify"].stop()


@pytest.fixture
def put_cart(client, api_headers):
    def put(sid, items=(), coupon=None, **extra):
        body = {"items": [{"reference": r, "quantity": q} for r, q in items], **extra}
        if coupon is not None:
            body["coupon"] = coupon
        return client.put(f"/api/sessions/{sid}/cart", json=body, headers=api_headers)
    return put


def assert_error(response, code, *words):
    """Our docs/design.md §7.4 body, with a message that names the problem."""
    assert response.status_code == code, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == code and isinstance(body["status"], str) and body["status"]
    assert isinstance(body["errors"], dict)
    for word in words:
        assert word in body["message"], (word, body["message"])
    return body


def events_of(client, api_headers, sid, after=0):
    response = client.get(f"/api/sessions/{sid}/events?after={after}", headers=api_headers)
    assert response.status_code == 200
    return response.get_json()["events"]


# -- authentication --------------------------------------------------------------------------
@pytest.mark.parametrize("method,path", [
    ("PUT", "/api/sessions/s-1/cart"), ("GET", "/api/sessions/s-1/state"),
    ("GET", "/api/sessions/s-1/events"), ("GET", "/api/events"), ("GET", "/api/markets")])
@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic dGVzdC1hcGkta2V5", "Bearer ",
                                    "test-api-key"])
def test_every_endpoint_needs_the_api_key(client, method, path, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.open(path, method=method, json={"items": []}, headers=headers)
    body = assert_error(response, 401, "API key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["status"] == "Unauthorized"


def test_the_key_is_case_sensitive_but_the_scheme_is_not(client, app, put_cart):
    put_cart("s-1", [(TSHIRT, 1)])
    key = app.config["KCO_API_KEY"]
    assert client.get("/api/markets", headers={"Authorization": f"bearer {key}"}).status_code == 200
    assert client.get("/api/markets", headers={"Authorization": f"Bearer {key.upper()}"}).status_code == 401


def test_browser_token_opens_its_own_session_only(client, put_cart, poll_token_for):
    put_cart("s-1", [(TSHIRT, 1)])
    put_cart("s-2", [(HOODIE, 1)])
    token = poll_token_for("s-1")
    state = client.get(f"/api/sessions/s-1/state?token={token}")
    assert state.status_code == 200 and state.get_json()["session"] == "s-1"
    feed = client.get(f"/api/sessions/s-1/events?token={token}")
    assert feed.status_code == 200 and [e["session"] for e in feed.get_json()["events"]] == ["s-1"]
    # ...and nothing else: another session, the global feed, the markets, another's cart.
    assert_error(client.get(f"/api/sessions/s-2/state?token={token}"), 401)
    assert_error(client.get(f"/api/sessions/s-2/events?token={token}"), 401)
    assert_error(client.get(f"/api/events?token={token}"), 401)
    assert_error(client.get(f"/api/markets?token={token}"), 401)
    assert_error(client.put(f"/api/sessions/s-2/cart?token={token}", json={"items": []}), 401)


def test_callback_token_is_not_a_poll_token(client, app, put_cart, poll_token_for):
    put_cart("s-1", [(TSHIRT, 1)])
    klarna_token = callback_token(app.config["KCO_CALLBACK_SECRET"], "s-1")
    assert_error(client.get(f"/api/sessions/s-1/state?token={klarna_token}"), 401)
    assert_error(client.get(f"/api/sessions/s-1/state?token={poll_token_for('s-1')}x"), 401)
    assert_error(client.get("/api/sessions/s-1/state?token="), 401)


@pytest.mark.parametrize("sid", ["bad!id", "a" * 129, "sp ace", "ä"])
def test_bad_session_id_is_400_naming_it(client, api_headers, sid):
    for method, path in (("PUT", "cart"), ("GET", "state"), ("GET", "events")):
        response = client.open(f"/api/sessions/{sid}/{path}", method=method,
                               json={"items": []}, headers=api_headers)
        body = assert_error(response, 400, "session id")
        assert "session" in body["errors"]


# -- PUT cart --------------------------------------------------------------------------------
def test_put_cart_creates_the_session_in_the_default_market(put_cart, shop, client, api_headers):
    response = put_cart("s-1", [(TSHIRT, 2), (HOODIE, 1)])
    assert response.status_code == 200
    state = response.get_json()
    assert state["session"] == "s-1" and state["version"] == 1
    assert state["market"]["country"] == shop.default_country
    assert state["market"]["currency"] == shop.default_market.currency
    assert state["cart"] == {"items": [{"reference": TSHIRT, "quantity": 2},
                                       {"reference": HOODIE, "quantity": 1}], "coupon": None}
    goods = [line for line in state["order"]["order_lines"] if line["type"] == "physical"]
    assert [(g["reference"], g["quantity"]) for g in goods] == [(TSHIRT, 2), (HOODIE, 1)]
    assert state["order"]["order_amount"] == sum(l["total_amount"] for l in state["order"]["order_lines"])
    assert response.headers["ETag"]
    [event] = events_of(client, api_headers, "s-1")
    assert event["type"] == "cart_updated" and event["version"] == 1 and event["session"] == "s-1"
    assert event["data"]["cart"]["old"] is None
    assert event["data"]["cart"]["new"] == state["cart"]
    assert event["data"]["totals"]["new"]["order_amount"] == state["order"]["order_amount"]


def test_put_cart_matches_the_pure_function(put_cart, shop):
    state = put_cart("s-1", [(TSHIRT, 3)], coupon="SUMMER10").get_json()
    expected = set_cart(shop, None, "s-1", [checkout.CartItem(TSHIRT, 3)], "SUMMER10").state
    assert state["order"] == expected["order"]
    assert state["shipping_options"] == expected["shipping_options"]


def test_put_cart_that_changes_nothing_records_nothing(put_cart, client, api_headers):
    first = put_cart("s-1", [(TSHIRT, 2)], coupon="SUMMER10").get_json()
    again = put_cart("s-1", [(TSHIRT, 1), (TSHIRT, 1)], coupon="summer10")  # same cart, spelled differently
    assert again.status_code == 200
    assert again.get_json()["version"] == 1
    assert again.get_json()["updated_at"] == first["updated_at"]
    assert len(events_of(client, api_headers, "s-1")) == 1


def test_put_cart_change_bumps_version_and_records_old_and_new(put_cart, client, api_headers):
    put_cart("s-1", [(TSHIRT, 1)])
    response = put_cart("s-1", [(TSHIRT, 1), (HOODIE, 2)], coupon="WELCOME50")
    state = response.get_json()
    assert state["version"] == 2 and state["cart"]["coupon"] == "WELCOME50"
    event = events_of(client, api_headers, "s-1")[-1]
    assert event["version"] == 2
    assert event["data"]["cart"]["old"] == {"items": [{"reference": TSHIRT, "quantity": 1}], "coupon": None}
    assert event["data"]["cart"]["new"] == state["cart"]
    assert event["data"]["totals"]["old"]["order_amount"] != event["data"]["totals"]["new"]["order_amount"]


def test_empty_cart_on_a_new_session_creates_it(put_cart):
    state = put_cart("s-empty", []).get_json()
    assert state["version"] == 1 and state["cart"]["items"] == []


def test_unknown_coupon_is_422_naming_it_and_stores_nothing(put_cart, client, api_headers, store):
    body = assert_error(put_cart("s-1", [(TSHIRT, 1)], coupon="WINTER99"), 422, "WINTER99")
    assert body["errors"]["coupon"] and "WINTER99" in body["errors"]["coupon"][0]
    assert store.get_state("s-1") is None
    put_cart("s-1", [(TSHIRT, 1)])
    assert_error(put_cart("s-1", [(TSHIRT, 5)], coupon="WINTER99"), 422, "WINTER99")
    assert store.get_state("s-1")["cart"]["items"] == [{"reference": TSHIRT, "quantity": 1}]


def test_unknown_sku_is_422_naming_it(put_cart, store):
    put_cart("s-1", [(TSHIRT, 1)])
    body = assert_error(put_cart("s-1", [(TSHIRT, 1), ("NO-SUCH-SKU", 2)]), 422, "NO-SUCH-SKU")
    assert "NO-SUCH-SKU" in body["errors"]["items.1.reference"][0]
    assert store.get_state("s-1")["version"] == 1


def test_no_price_in_the_currency_is_422_naming_sku_and_currency(put_cart, store, shop):
    with store.session("s-ch") as tx:
        tx.save(checkout.new_state(shop, "s-ch", country="CH"), "market_changed", {})
    body = assert_error(put_cart("s-ch", [(TSHIRT, 1), (HONEY, 1)]), 422, HONEY, "CHF")
    assert "items.1.reference" in body["errors"]
    assert store.get_state("s-ch")["cart"]["items"] == []


def test_over_klarna_limits_is_422(put_cart):
    body = assert_error(put_cart("s-1", [(HOODIE, 10_000)]), 422, "100000000")
    assert body["errors"]


@pytest.mark.parametrize("quantity", [0, -1, 10_001, 1.5, 2.0, "2", True, None, [1]])
def test_bad_quantities_are_422_naming_the_field(put_cart, client, api_headers, quantity):
    response = client.put("/api/sessions/s-1/cart", headers=api_headers,
                          json={"items": [{"reference": TSHIRT, "quantity": 1},
                                          {"reference": HOODIE, "quantity": quantity}]})
    body = assert_error(response, 422, "items.1.quantity")
    assert list(body["errors"]) == ["items.1.quantity"]


def test_quantity_limits_are_inclusive(put_cart):
    assert put_cart("s-1", [("TOTE-CANVAS", 10_000)]).status_code == 200  # 99 000 000 öre
    assert put_cart("s-2", [(TSHIRT, 1)]).status_code == 200


def test_at_most_1000_items(put_cart):
    assert put_cart("s-1", [(TSHIRT, 1)] * 1000).status_code == 200  # merged into one line
    assert_error(put_cart("s-2", [(TSHIRT, 1)] * 1001), 422, "items", "1000")


@pytest.mark.parametrize("body,field", [
    ({"items": [], "discount": 5}, "discount"),
    ({"items": [{"reference": TSHIRT, "quantity": 1, "price": 1}]}, "items.0.price"),
    ({}, "items"),
    ({"items": [{"quantity": 1}]}, "items.0.reference"),
    ({"items": [{"reference": "", "quantity": 1}]}, "items.0.reference"),
    ({"items": "TSHIRT"}, "items"),
    ({"items": [], "coupon": ""}, "coupon"),
    ({"items": [], "coupon": 10}, "coupon"),
    ([], "_schema"),
    ("cart", "_schema"),
])
def test_bad_bodies_are_422_naming_the_field(client, api_headers, body, field):
    response = client.put("/api/sessions/s-1/cart", json=body, headers=api_headers)
    result = assert_error(response, 422, field)
    assert field in result["errors"]


def test_body_that_is_not_json_is_400(client, api_headers):
    response = client.put("/api/sessions/s-1/cart", data=b"{items: [", headers=api_headers,
                          content_type="application/json")
    assert_error(response, 400, "JSON")


def test_body_over_1_mib_is_413_in_our_body(client, api_headers):
    response = client.put("/api/sessions/s-1/cart", data=b" " * (1024 * 1024 + 1),
                          headers=api_headers, content_type="application/json")
    assert_error(response, 413)


@pytest.mark.parametrize("reference", ["\ud800", "\x00SKU", "TSHIRT\udfffBLUE"])
def test_a_reference_no_database_can_hold_is_an_unknown_product(client, api_headers, store, reference):
    """Found by the reliability suite: the catalog asked the database for it (PostgreSQL
    refuses NUL, no driver encodes a lone surrogate) and the cart write was a 500."""
    import json

    body = json.dumps({"items": [{"reference": reference, "quantity": 1}]})  # \u-escaped
    r = client.put("/api/sessions/s-odd/cart", data=body, headers=api_headers,
                   content_type="application/json")
    assert_error(r, 422)
    assert "items.0.reference" in r.get_json()["errors"]
    assert store.get_state("s-odd") is None


def test_unknown_api_route_and_method_are_json(client, api_headers):
    assert_error(client.get("/api/nothing-here", headers=api_headers), 404)
    assert_error(client.post("/api/sessions/s-1/state", headers=api_headers), 405)


# -- state and ETag --------------------------------------------------------------------------
def test_state_has_an_etag_and_if_none_match_gives_304(client, api_headers, put_cart):
    put_cart("s-1", [(TSHIRT, 1)])
    first = client.get("/api/sessions/s-1/state", headers=api_headers)
    assert first.status_code == 200 and first.get_json()["version"] == 1
    tag = first.headers["ETag"]
    assert tag.startswith('"') and tag.endswith('"')
    assert "no-cache" in first.headers["Cache-Control"]
    cached = client.get("/api/sessions/s-1/state", headers={**api_headers, "If-None-Match": tag})
    assert cached.status_code == 304 and cached.data == b"" and cached.headers["ETag"] == tag
    for match in (f"W/{tag}", f'"other", {tag}', "*"):
        again = client.get("/api/sessions/s-1/state", headers={**api_headers, "If-None-Match": match})
        assert again.status_code == 304, match
    put_cart("s-1", [(TSHIRT, 2)])
    changed = client.get("/api/sessions/s-1/state", headers={**api_headers, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert changed.get_json()["version"] == 2


def test_state_etag_with_poll_token(client, put_cart, poll_token_for):
    tag = put_cart("s-1", [(TSHIRT, 1)]).headers["ETag"]
    url = f"/api/sessions/s-1/state?token={poll_token_for('s-1')}"
    assert client.get(url, headers={"If-None-Match": tag}).status_code == 304


def test_the_state_read_sends_what_the_last_write_replied_under_its_etag(client, api_headers, put_cart, shop):
    """The state read sends the stored JSON text; a PUT's reply is dumped by StateSchema. Both
    must be the same state under the same ETag, in every market, or a storefront holding the
    PUT's reply would download it again (or, worse, hold a stale copy)."""
    for country, market in shop.markets.items():
        sid = f"s-{country}"
        skus = [p.sku for p in shop.products.values() if market.currency in p.prices][:3]
        put_cart(sid, [(skus[0], 1)])
        changed = client.put(f"/api/sessions/{sid}/market", headers=api_headers, json={"country": country})
        written = put_cart(sid, [(sku, 2) for sku in skus], coupon="SUMMER10")
        for reply in (changed, written):
            assert reply.status_code == 200, reply.get_data(as_text=True)
        read = client.get(f"/api/sessions/{sid}/state", headers=api_headers)
        assert read.status_code == 200 and read.mimetype == "application/json"
        assert read.get_json() == written.get_json(), country
        assert read.headers["ETag"] == written.headers["ETag"] != changed.headers["ETag"], country
        again = client.get(f"/api/sessions/{sid}/state",
                           headers={**api_headers, "If-None-Match": written.headers["ETag"]})
        assert again.status_code == 304, country


def test_a_state_stored_by_the_older_encoder_reads_as_a_write_of_it_would_reply(client, api_headers, put_cart, store):
    """States written before the orjson encoder (spaces after colons, keys unsorted) are sent
    re-encoded: same content, and the ETag of a PUT that leaves that state as it is."""
    import json

    import sqlalchemy as sa
    state = put_cart("s-1", [(TSHIRT, 2)]).get_json()
    legacy = json.dumps(dict(reversed(list(state.items()))))  # the standard library's default form
    assert '": ' in legacy
    cast = "CAST(:state AS JSON)" if store.is_postgres else ":state"
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE sessions SET state = {cast} WHERE sid = 's-1'"), {"state": legacy})
    read = client.get("/api/sessions/s-1/state", headers=api_headers)
    assert read.status_code == 200 and read.get_json() == state
    assert b'": ' not in read.data
    same = put_cart("s-1", [(TSHIRT, 2)])  # changes nothing: replies with the stored state
    assert same.get_json() == state and same.headers["ETag"] == read.headers["ETag"]
    again = client.get("/api/sessions/s-1/state", headers={**api_headers, "If-None-Match": same.headers["ETag"]})
    assert again.status_code == 304


def test_unknown_session_is_404_in_our_body(client, api_headers, poll_token_for):
    body = assert_error(client.get("/api/sessions/nobody/state", headers=api_headers), 404, "nobody")
    assert body["status"] == "Not Found"
    assert_error(client.get("/api/sessions/nobody/events?wait=5", headers=api_headers), 404, "nobody")
    assert_error(client.get(f"/api/sessions/nobody/state?token={poll_token_for('nobody')}"), 404)


def test_state_follows_klarna_callbacks(client, api_headers, put_cart, klarna):
    put_cart("s-1", [(TSHIRT, 1)])
    before = client.get("/api/sessions/s-1/state", headers=api_headers)
    state = before.get_json()
    body = {**state["order"], "purchase_currency": state["market"]["currency"],
            "locale": state["market"]["locale"],
            "billing_address": {"country": "SE"}, "shipping_address": {"country": "se", "given_name": "Ann"}}
    assert klarna("address_update", "s-1", body).status_code == 200
    after = client.get("/api/sessions/s-1/state", headers={**api_headers, "If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.get_json()["version"] == 2 and after.get_json()["shipping_country"] == "SE"
    assert "Ann" not in after.get_data(as_text=True)


# -- versions and events ---------------------------------------------------------------------
def test_versions_count_every_change_without_gaps(client, api_headers, put_cart, klarna, store):
    """API and callback changes interleaved: events 1, 2, 3, … and each is the state's version."""
    seen_versions = []
    put_cart("s-1", [(TSHIRT, 1)])
    seen_versions.append(store.get_state("s-1")["version"])
    put_cart("s-2", [(HOODIE, 1)])  # another session's events interleave in the global feed
    put_cart("s-1", [(TSHIRT, 1)])  # no change: no version
    for cart in ([(TSHIRT, 2)], [(TSHIRT, 2), (HOODIE, 1)]):
        put_cart("s-1", cart)
        seen_versions.append(store.get_state("s-1")["version"])
    state = store.get_state("s-1")
    for country in ("SE", "FI"):
        body = {**state["order"], "purchase_currency": state["market"]["currency"],
                "locale": state["market"]["locale"], "billing_address": {"country": country}}
        callback = "address_update" if country == "SE" else "country_change"
        assert klarna(callback, "s-1", body).status_code == 200
        seen_versions.append(store.get_state("s-1")["version"])
        state = store.get_state("s-1")
    put_cart("s-1", [(TSHIRT, 1)])
    seen_versions.append(store.get_state("s-1")["version"])
    events = events_of(client, api_headers, "s-1")
    assert [e["version"] for e in events] == list(range(1, len(events) + 1)) == seen_versions
    assert [e["type"] for e in events] == ["cart_updated", "cart_updated", "cart_updated",
                                           "address_updated", "market_changed", "cart_updated"]
    assert events[-1]["version"] == store.get_state("s-1")["version"]
    assert all(a["id"] < b["id"] for a, b in zip(events, events[1:]))
    assert store.get_state("s-1")["market"]["currency"] == "EUR"


def test_global_feed_pages_with_last_id(client, api_headers, put_cart):
    for n in range(3):
        put_cart(f"s-{n}", [(TSHIRT, 1)])
    put_cart("s-0", [(TSHIRT, 2)])
    feed = client.get("/api/events", headers=api_headers).get_json()
    assert [(e["session"], e["version"]) for e in feed["events"]] == [
        ("s-0", 1), ("s-1", 1), ("s-2", 1), ("s-0", 2)]
    assert feed["last_id"] == feed["events"][-1]["id"]
    ids = [e["id"] for e in feed["events"]]
    middle = client.get(f"/api/events?after={ids[1]}", headers=api_headers).get_json()
    assert [e["id"] for e in middle["events"]] == ids[2:]
    empty = client.get(f"/api/events?after={feed['last_id']}", headers=api_headers).get_json()
    assert empty == {"events": [], "last_id": feed["last_id"]}
    for event in feed["events"]:
        assert set(event) == {"id", "session", "type", "version", "at", "data"}
        assert event["at"].endswith("Z")


def test_session_feed_only_has_its_session(client, api_headers, put_cart):
    put_cart("s-1", [(TSHIRT, 1)])
    put_cart("s-2", [(TSHIRT, 1)])
    put_cart("s-1", [(TSHIRT, 3)])
    feed = client.get("/api/sessions/s-1/events?after=0", headers=api_headers).get_json()
    assert [e["session"] for e in feed["events"]] == ["s-1", "s-1"]
    assert feed["last_id"] == feed["events"][-1]["id"]
    first = feed["events"][0]["id"]
    rest = client.get(f"/api/sessions/s-1/events?after={first}", headers=api_headers).get_json()
    assert [e["version"] for e in rest["events"]] == [2]


def test_wait_returns_at_once_when_events_exist(client, api_headers, put_cart):
    import time
    put_cart("s-1", [(TSHIRT, 1)])
    started = time.monotonic()
    feed = client.get("/api/events?after=0&wait=20", headers=api_headers).get_json()
    assert feed["events"] and time.monotonic() - started < 5


@pytest.mark.parametrize("query,name", [
    ("after=abc", "after"), ("after=-1", "after"), ("after=1.5", "after"), ("after=1e3", "after"),
    ("after=%C2%B2", "after"), ("after=" + "9" * 19, "after"),
    ("wait=abc", "wait"), ("wait=-1", "wait"), ("wait=-0.5", "wait"), ("wait=nan", "wait"),
    ("wait=inf", "wait"), ("wait=1s", "wait"),
])
@pytest.mark.parametrize("path", ["/api/events", "/api/sessions/s-1/events"])
def test_bad_after_or_wait_is_400_naming_it(client, api_headers, put_cart, query, name, path):
    put_cart("s-1", [(TSHIRT, 1)])
    body = assert_error(client.get(f"{path}?{query}", headers=api_headers), 400, name)
    assert name in body["errors"]


def test_wait_is_capped_at_30_seconds():
    for raw, expected in (("100", 30.0), ("30", 30.0), ("0.25", 0.25), ("", 0.0), ("0", 0.0)):
        assert schemas.FeedQuery().load({"wait": raw})["wait"] == expected


# -- markets -----------------------------------------------------------------------------------
def test_markets(client, api_headers, shop):
    body = client.get("/api/markets", headers=api_headers).get_json()
    assert body["default_country"] == shop.default_country
    by_country = {m["country"]: m for m in body["markets"]}
    assert set(by_country) == set(shop.markets)
    assert by_country["FI"] == {"country": "FI", "currency": "EUR",
                                "locales": ["fi-FI", "sv-FI", "en-FI"], "default_locale": "fi-FI"}
    assert by_country["US"]["currency"] == "USD"


def test_concurrent_cart_updates_lose_nothing(app, client, api_headers, store):
    """Twenty storefront requests at once on one session: every change is a version, every
    version an event, no gaps, and the state is the last event's."""
    import threading

    statuses = []

    def put(quantity):
        response = app.test_client().put("/api/sessions/s-1/cart", headers=api_headers,
                                         json={"items": [{"reference": TSHIRT, "quantity": quantity}]})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=put, args=(q,)) for q in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 20
    events = events_of(client, api_headers, "s-1")
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) == 20  # twenty different carts: twenty changes
    state = store.get_state("s-1")
    assert state["version"] == events[-1]["version"]
    assert state["cart"] == events[-1]["data"]["cart"]["new"]
    for older, newer in zip(events, events[1:]):
        assert newer["data"]["cart"]["old"] == older["data"]["cart"]["new"]


# -- the state document: rules.state.SessionState, served through storefront.schemas ----------
def _schema_keys(schema) -> dict:
    """{key: required?}, and the same for every nested schema, by dotted path."""
    out = {}
    for name, field in schema.fields.items():
        out[name] = field.required
        inner = getattr(field, "inner", field)  # a List's element
        if hasattr(inner, "schema"):
            out.update({f"{name}.{k}": v for k, v in _schema_keys(inner.schema).items()})
    return out


def _typed_keys(typed) -> dict:
    import typing
    out = {}
    hints = typing.get_type_hints(typed)
    for name in hints:
        out[name] = name in typed.__required_keys__
        for inner in (hints[name], *typing.get_args(hints[name])):
            inner = (typing.get_args(inner) or [inner])[0] if typing.get_origin(inner) is list else inner
            if typing.is_typeddict(inner):
                out.update({f"{name}.{k}": v for k, v in _typed_keys(inner).items()})
    return out


def test_the_served_state_has_exactly_the_keys_of_session_state():
    from callbacks.rules.state import SessionState
    assert _schema_keys(schemas.StateSchema()) == _typed_keys(SessionState)


def test_get_state_serves_the_stored_state_unchanged(client, api_headers, put_cart, klarna, store):
    """Through every key a session gains (addresses, validation, a completed Klarna order with a
    fraud status): what the storefront reads is what was stored, nothing dropped or renamed."""
    state = put_cart("s-1", [(TSHIRT, 2)], coupon="SUMMER10").get_json()
    body = {**state["order"], "purchase_currency": state["market"]["currency"],
            "locale": state["market"]["locale"], "billing_address": {"country": "SE", "region": "AB"},
            "shipping_address": {"country": "SE"}, "order_id": "kco-1"}
    assert klarna("address_update", "s-1", body).status_code == 200
    assert klarna("validation", "s-1", {**store.get_state("s-1")["order"], **body}).status_code == 200
    with store.session("s-1") as tx:
        tx.save({**tx.state, "klarna": {**tx.state["klarna"], "status": "checkout_complete", "synced_version": 2,
                                        "fraud_status": "ACCEPTED", "acknowledged": True}},
                "order_acknowledged", {"order_id": "kco-1"})
    stored = store.get_state("s-1")
    assert stored["validation"]["result"] == "passed" and stored["billing_region"] == "AB"
    served = client.get("/api/sessions/s-1/state", headers=api_headers)
    assert served.get_json() == stored


@pytest.mark.parametrize("coupon", [None, "SUMMER10"])
def test_the_states_stored_lists_are_sent_as_their_schemas_document_them(coupon):
    """The state's cart items and order lines go out as stored (schemas.Stored), not dumped
    item by item: what is stored must be exactly what the documented item schemas dump, in
    every market (VAT and US sales tax lines, shipping, discounts)."""
    from callbacks.rules.pricing import CartItem
    from callbacks.rules.shop import load_shop

    shop = load_shop()
    for market in shop.markets.values():
        skus = [p.sku for p in shop.products.values() if market.currency in p.prices][:4]
        state = checkout.new_state(shop, "s", country=market.country)
        state = set_cart(shop, state, "s", [CartItem(s, 2) for s in skus], coupon).state
        dumped = schemas.StateSchema().dump(state)
        lines, items = state["order"]["order_lines"], state["cart"]["items"]
        # goods, shipping and more; where Klarna's Shipping Assistant prices the shipping, the
        # line is Klarna's, not ours (docs/design.md §5.8)
        assert len(lines) >= len(items) + (0 if market.shipping_assistant else 1) > 0, market.country
        assert dumped["order"]["order_lines"] == schemas.OrderLineReplySchema(many=True).dump(lines) == lines
        assert dumped["cart"]["items"] == schemas.CartLineSchema(many=True).dump(items) == items
        # The state read sends the stored JSON text as it is: StateSchema must dump it unchanged.
        assert dumped == state, market.country
