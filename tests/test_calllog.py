"""The callback log (docs/design.md §8): every Klarna callback with a right token is recorded once,
scrubbed, with its reply, status and duration; a wrong token leaves no trace; `flask kco purge`."""
from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callbacks.klarna import scrub as scrubbing
from callbacks.store.database import callback_log, utcnow
from tests.conftest import kco_url

PERSONAL = ["Testperson", "Approved", "test@example.com", "+46765260000", "Sveavägen 44",
            "Sveavägen", "44B", "12345", "Stockholm", "1941-03-21", "194103211234", "c/o Lund",
            "Example AB", "Reception", "Dr", "5561234567", "SE556123456701", "vip-customer",
            "female"]


def address(country="SE", region=None):
    return {"given_name": "Testperson", "family_name": "Approved", "email": "test@example.com",
            "phone": "+46765260000", "street_address": "Sveavägen 44", "street_address2": "c/o Lund",
            "street_name": "Sveavägen", "street_number": "44B", "house_extension": "B",
            "care_of": "c/o Lund", "title": "Dr", "postal_code": "12345", "city": "Stockholm",
            "organization_name": "Example AB", "attention": "Reception", "country": country,
            "region": region}


def order_body(**extra):
    line = {"type": "physical", "reference": "TSHIRT-BLUE-M", "name": "Blue T-shirt, M",
            "quantity": 1, "unit_price": 19900, "tax_rate": 2500, "total_amount": 19900,
            "total_discount_amount": 0, "total_tax_amount": 3980}
    return {"order_amount": 19900, "order_tax_amount": 3980, "order_lines": [line],
            "purchase_currency": "SEK", "locale": "sv-SE",
            "billing_address": address(), "shipping_address": address(),
            "customer": {"date_of_birth": "1941-03-21", "national_identification_number": "194103211234",
                         "organization_registration_id": "5561234567", "vat_id": "SE556123456701",
                         "gender": "female", "type": "person"},
            "attachment": {"content_type": "application/vnd.klarna.internal.emd-v2+json",
                           "body": json.dumps({"customer_account_info": [
                               {"unique_account_identifier": "vip-customer", "account_registration_date": "2020-01-01"}]})},
            **extra}


def rows(store):
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(callback_log).order_by(callback_log.c.id))]


# -- scrub -----------------------------------------------------------------------------------
def test_scrub_by_allow_list_recursively():
    body = order_body(merchant_urls={"push": "https://shop.example/kco/push?session=s-1&token=SECRET123&x=1"})
    scrubbed = scrubbing.scrub(body)
    text = json.dumps(scrubbed, ensure_ascii=False)
    for value in PERSONAL + ["SECRET123", "Blue T-shirt"]:
        assert value not in text, value
    assert scrubbed["billing_address"]["country"] == "SE"
    assert scrubbed["billing_address"]["region"] is None  # empty values stay visible
    assert scrubbed["billing_address"]["given_name"] == scrubbing.SCRUBBED
    assert scrubbed["customer"] == scrubbed["merchant_urls"] == scrubbing.SCRUBBED
    line = body["order_lines"][0]
    assert scrubbed["order_lines"] == [{**line, "name": scrubbing.SCRUBBED}]  # SKUs and amounts kept
    assert body["billing_address"]["given_name"] == "Testperson"  # a copy, not in place


def test_scrub_lists_unknown_keys_and_empty_values():
    assert scrubbing.scrub([{"Email": "a@b.c", "order_lines": [{"PHONE": "1"}]}, "x", 3, None]) == \
        [{"[scrubbed key 0]": scrubbing.SCRUBBED, "order_lines": [{"[scrubbed key 0]": scrubbing.SCRUBBED}]},
         scrubbing.SCRUBBED, scrubbing.SCRUBBED, None]
    assert scrubbing.scrub({"email": "", "phone": None}) == {"email": "", "phone": None}


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=8), st.sampled_from(["", "physical", "SKU-1", "a\nb"]))
_LINE_KEYS = st.sampled_from([*scrubbing.LINE, "name", "product_url", "Quantity", "weird key", ""])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_LINE_KEYS, st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2),
                                                      st.dictionaries(_LINE_KEYS, _SCALARS, max_size=2)),
                                max_size=12), max_size=5))
def test_order_lines_are_scrubbed_as_the_allow_list_says(lines):
    """The unrolled scrubber for order lines keeps exactly what the general one keeps."""
    scrubbed = scrubbing.scrub({"order_lines": lines})["order_lines"]
    assert scrubbed == [scrubbing._dict(line, False, scrubbing.LINE) for line in lines]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_LINE_KEYS, st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2),
                                                      st.dictionaries(_LINE_KEYS, _SCALARS, max_size=2)),
                                max_size=12), max_size=5))
def test_compact_lines_keep_exactly_the_allow_listed_verdicts(lines):
    """The log's compact rows, read back, are the general scrubber's lines without what it
    scrubbed: each allow-listed field with the same verdict, absent where it was absent, and
    nothing else (no other key, no other value)."""
    body = {"order_lines": lines, "order_amount": 1, "email": "a@b.example"}
    logged = scrubbing.scrub_request(body)
    assert logged["order_amount"] == 1 and logged["email"] == scrubbing.SCRUBBED
    assert set(logged["order_lines"]) == {"cols", "rows"}
    old = scrubbing.scrub(body)["order_lines"]
    assert scrubbing.readable(logged)["order_lines"] == [
        {key: value for key, value in line.items() if key in scrubbing.LINE_COLS} for line in old]
    assert list(scrubbing.readable(logged)) == list(body)  # the keys' order kept


@pytest.mark.parametrize("lines", [
    [{"quantity": 10**400, "unit_price": 1.5, "reference": "A"}],  # too large to add to a float
    [{"type": "physical", "reference": "A\u00a0B", "quantity": 1}, {"reference": "x" * 256, "type": "1x"},
     {"type": "", "reference": "", "quantity": None}, {"type": 3, "reference": ["A"], "quantity": "3"},
     {"reference": "a\u2028b", "type": "physical", "quantity": True}],
])
def test_compact_lines_keep_exactly_the_allow_listed_verdicts_for_these(lines):
    logged = scrubbing.readable(scrubbing.scrub_request({"order_lines": lines}))["order_lines"]
    assert logged == [{key: value for key, value in scrubbing._line(line).items()
                       if key in scrubbing.LINE_COLS} for line in lines]


def test_compact_lines_only_for_a_list_of_objects():
    """Anything else is scrubbed as before (and refused by the callbacks): read as it was."""
    for lines in ("nope", [{"reference": "A"}, "B"], {"cols": ["reference"], "rows": [["x"]]}, None):
        body = {"order_lines": lines}
        assert scrubbing.scrub_request(body) == scrubbing.scrub(body)
        assert scrubbing.readable(scrubbing.scrub_request(body)) == scrubbing.scrub(body)
    assert scrubbing.scrub_request([{"order_lines": []}]) == [{"order_lines": []}]
    assert scrubbing.readable({"order_lines": {"cols": [], "rows": []}}) == {"order_lines": []}


def test_an_old_row_reads_as_it_was_written():
    """Rows written before the compact rows hold the lines as objects: read as they are."""
    old = scrubbing.scrub(order_body())
    assert scrubbing.readable(old) is old


def test_reply_keeps_our_error_words_but_no_token():
    reply = {"error_type": "approval_failed", "error_text": "Sorry.", "errors": {"order_id": ["No."]},
             "location": "https://shop.example/checkout?token=T0KEN&kco_error=cart_changed"}
    scrubbed = scrubbing.scrub(reply, reply=True)
    assert {k: scrubbed[k] for k in ("error_type", "error_text", "errors")} == \
        {k: reply[k] for k in ("error_type", "error_text", "errors")}
    assert "T0KEN" not in scrubbed["location"] and "kco_error=cart_changed" in scrubbed["location"]


# -- what is recorded --------------------------------------------------------------------------
def test_callback_is_recorded_scrubbed_with_reply_status_and_duration(klarna, store, caplog):
    caplog.set_level(logging.DEBUG, logger="callbacks.klarna.calllog")
    response = klarna("address_update", "s-1", order_body(), order_id="ord-1")
    assert response.status_code == 200
    [row] = rows(store)
    assert row["callback"] == "address_update" and row["session"] == "s-1"
    assert row["order_id"] == "ord-1" and row["status"] == 200
    assert row["duration_ms"] > 0
    # Our own 200 reply is built from the session's state, not from the caller's body: it is
    # logged as sent (names are the shop's); the personal data below is still absent.
    assert row["reply"] == response.get_json()
    # The lines as compact rows: the allow-listed fields only, read back as lines.
    line = order_body()["order_lines"][0]
    assert row["request"]["order_lines"] == {"cols": list(scrubbing.LINE_COLS),
                                             "rows": [[line[key] for key in scrubbing.LINE_COLS]]}
    assert scrubbing.readable(row["request"])["order_lines"] == [
        {key: value for key, value in line.items() if key != "name"}]
    assert row["request"]["shipping_address"]["country"] == "SE"
    stored = json.dumps(row["request"], ensure_ascii=False) + json.dumps(row["reply"], ensure_ascii=False)
    for value in PERSONAL:
        assert value not in stored, value
    assert store.logged_callback(row["id"])["callback"] == "address_update"
    # ...and one Python log line per callback, scrubbed as well.
    lines = [r for r in caplog.records if r.name == "callbacks.klarna.calllog"]
    assert any("address_update" in r.getMessage() and "200" in r.getMessage() for r in lines)
    logged = "\n".join(r.getMessage() for r in lines)
    assert "TSHIRT-BLUE-M" in logged  # the DEBUG line carries the request
    for value in PERSONAL:
        assert value not in logged, value


@pytest.mark.parametrize("token", ["wrong", "", None])
def test_wrong_or_missing_token_is_not_recorded(app, client, store, token, caplog):
    caplog.set_level(logging.DEBUG)
    url = kco_url(app, "address_update", "s-1", token=token if token is not None else "")
    if token is None:
        url = "/kco/address_update?session=s-1"
    response = client.post(url, json=order_body())
    assert response.status_code == 401
    assert rows(store) == []
    assert "Testperson" not in caplog.text
    assert not [r for r in caplog.records if r.name == "callbacks.klarna.calllog"]


def test_error_replies_are_recorded(klarna, store):
    bad = klarna("address_update", "s-1", {"order_lines": "nope"})
    assert bad.status_code == 400
    too_big = klarna("address_update", "s-1", data=b" " * (1024 * 1024 + 10))
    assert too_big.status_code == 413
    not_json = klarna("address_update", "s-1", data=b"given_name=Testperson")
    assert not_json.status_code == 400
    unsupported = klarna("address_update", "s-1", order_body(shipping_address=address("JP")))
    assert unsupported.status_code == 400
    recorded = rows(store)
    # An oversize body is refused with nothing recorded (it is never read, so there is nothing
    # to keep: a warning line says so); the others are logged.
    assert [r["status"] for r in recorded] == [400, 400, 400]
    assert recorded[0]["reply"] == bad.get_json()
    assert recorded[0]["request"] == {"order_lines": scrubbing.SCRUBBED}
    assert "_omitted" in recorded[1]["request"]
    assert "Testperson" not in json.dumps(recorded[1]["request"])
    assert recorded[2]["reply"]["error_type"] == "unsupported_shipping_address"
    assert recorded[2]["request"]["shipping_address"]["country"] == "JP"


def test_bad_session_id_with_right_token_is_recorded(app, client, store):
    sid = "bad id!"
    response = client.post(kco_url(app, "address_update", sid), json=order_body())
    assert response.status_code == 400
    [row] = rows(store)
    assert row["session"] == sid and row["status"] == 400


def test_validation_redirect_and_token_in_body_are_recorded_safely(app, klarna, store):
    klarna("address_update", "s-1", order_body())
    body = order_body(order_id="ord-9", purchase_country="SE",
                      merchant_urls={"validation": "https://x/kco/validation?session=s-1&token=LEAKME"})
    body["order_amount"] = 1  # no longer matches the cart: 303 back to the checkout page
    response = klarna("validation", "s-1", body, order_id="ord-9")
    assert response.status_code == 303
    row = rows(store)[-1]
    assert row["callback"] == "validation" and row["status"] == 303
    assert row["reply"] == {"location": response.headers["Location"]}
    assert "LEAKME" not in json.dumps(row["request"])


def test_every_callback_is_recorded_once(klarna, store):
    for n in range(3):
        klarna("address_update", f"s-{n}", order_body())
    klarna("shipping_option_update", "s-0", order_body(selected_shipping_option={"id": "postnord-home"}))
    assert [r["callback"] for r in rows(store)] == ["address_update"] * 3 + ["shipping_option_update"]


def test_asynchronous_callbacks_are_recorded_too(klarna, store):
    """push and notification go through the same hook (these replies need no Klarna call)."""
    assert klarna("push", "s-1", data=b"").status_code == 400  # no order_id in the URL
    unknown = klarna("notification", "s-1", {"order_id": "ord-1", "event_type": "FRAUD_RISK_MAYBE"},
                     order_id="ord-1")
    assert unknown.status_code == 400
    push_row, notification_row = rows(store)
    assert (push_row["callback"], push_row["status"], push_row["request"]) == ("push", 400, None)
    assert notification_row["callback"] == "notification" and notification_row["order_id"] == "ord-1"
    # An event type Klarna does not have is the caller's free text: not kept (it could hold anything,
    # personal data included).
    assert notification_row["request"] == {"order_id": "ord-1", "event_type": scrubbing.SCRUBBED}
    assert notification_row["reply"] == unknown.get_json()


def test_callback_metrics(client, klarna, app):
    klarna("address_update", "s-1", order_body())
    klarna("address_update", "s-1", {"order_lines": "nope"})
    client.post("/kco/address_update?session=s-1&token=wrong", json=order_body())
    text = client.get("/metrics").get_data(as_text=True)
    assert 'kco_callbacks_total{callback="address_update",status="200"} 1.0' in text
    assert 'kco_callbacks_total{callback="address_update",status="400"} 1.0' in text
    assert 'kco_callbacks_total{callback="address_update",status="401"} 1.0' in text
    assert 'kco_callback_duration_seconds_count{callback="address_update"} 3.0' in text
    assert 'kco_callback_duration_seconds_bucket{callback="address_update",le="0.005"}' in text


def test_a_failing_log_does_not_break_the_reply(klarna, store, monkeypatch):
    def down(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))
    monkeypatch.setattr(store, "log_callback", down)
    assert klarna("address_update", "s-1", order_body()).status_code == 200


# -- purge -----------------------------------------------------------------------------------
def test_purge_deletes_only_older_entries(app, klarna, store):
    for n in range(4):
        klarna("address_update", f"s-{n}", order_body())
    ids = [r["id"] for r in rows(store)]
    with store.engine.begin() as conn:
        for log_id, age in zip(ids, (100, 31, 29, 0)):
            conn.execute(callback_log.update().where(callback_log.c.id == log_id)
                         .values(at=utcnow() - timedelta(days=age)))
    result = app.test_cli_runner().invoke(args=["kco", "purge", "--older-than", "30"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 callback log entries and 0 activity entries older than 30 days" in result.output
    assert [r["id"] for r in rows(store)] == ids[2:]
    again = app.test_cli_runner().invoke(args=["kco", "purge", "--older-than", "60"])
    assert again.exit_code == 0 and "deleted 0" in again.output


@pytest.mark.parametrize("args", [["--older-than", "0"], ["--older-than", "-3"],
                                  ["--older-than", "abc"], ["--older-than", "1.5"], []])
def test_purge_needs_a_positive_whole_number_of_days(app, args, klarna, store):
    klarna("address_update", "s-1", order_body())
    result = app.test_cli_runner().invoke(args=["kco", "purge", *args])
    assert result.exit_code != 0
    assert "--older-than" in result.output
    assert len(rows(store)) == 1


def test_a_log_row_the_database_refuses_undoes_nothing_of_the_session(klarna, store, monkeypatch):
    """The row is written in the session's transaction; when the database refuses it there (on
    PostgreSQL a failing statement aborts the transaction: the row has its own savepoint), the
    change and its event stay, and the row is written on its own after the commit."""
    real = store.log_callback

    def refused_with_the_session(*args, conn=None, **kwargs):
        if conn is not None:  # NOT NULL: the database refuses the row, not our Python
            return real(*args, **{**kwargs, "status": None}, conn=conn)
        return real(*args, **kwargs)
    monkeypatch.setattr(store, "log_callback", refused_with_the_session)
    response = klarna("address_update", "s-1", order_body())
    assert response.status_code == 200, response.data
    assert store.get_state("s-1")["version"] == 1
    assert [e["type"] for e in store.events_after(0)] == ["address_updated"]
    [row] = rows(store)
    assert row["status"] == 200 and row["reply"] == response.get_json()


def test_a_log_row_that_takes_sqlites_transaction_down_fails_the_callback_whole(klarna, store, monkeypatch):
    """SQLite may roll a whole transaction back when a statement fails for want of disk or on
    an I/O error: the callback must then fail (503), not answer 200 for a change it lost."""
    if store.is_postgres:
        pytest.skip("SQLite's own behaviour; PostgreSQL's log row has a savepoint")
    assert klarna("address_update", "s-1", order_body()).status_code == 200
    before, events = store.get_state("s-1"), store.events_after(0)
    real = store.log_callback

    def disk_full(*args, conn=None, **kwargs):
        if conn is not None:  # the row inside the session's transaction: SQLite gives up on it
            conn.connection.driver_connection.rollback()
            raise sa.exc.OperationalError("INSERT", {}, Exception("database or disk is full"))
        return real(*args, **kwargs)
    monkeypatch.setattr(store, "log_callback", disk_full)
    moved = order_body(shipping_address={**address(), "country": "FI"})
    response = klarna("address_update", "s-1", moved)
    assert response.status_code == 503, response.data
    assert store.get_state("s-1") == before and store.events_after(0) == events


def test_requests_in_one_app_context_do_not_log_each_others_bodies(app, klarna, store):
    """`flask kco replay` sends its samples inside the CLI's app context, which they share."""
    with app.app_context():
        assert klarna("address_update", "s-1", order_body()).status_code == 200
        assert klarna("push", "s-1").status_code == 400  # no order_id in the URL: refused
    first, second = rows(store)
    assert second["callback"] == "push" and second["request"] is None
    assert second["reply"] != first["reply"] and second["reply"]["code"] == 400
