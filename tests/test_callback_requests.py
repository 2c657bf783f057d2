"""What a callback URL refuses before any decision: forged log lines, echoed
free text, methods other than POST and bodies that are not JSON."""
from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from callbacks.klarna.order import CALLBACKS, SYNCHRONOUS
from callbacks.store.database import callback_log

from .conftest import kco_url
from .payloads import goods_line, shipping_service_body, validation_body

FORGED = "x\nWARNING:callbacks:fake"


def log_rows(store):
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(callback_log))]


def assert_shape(callback, r):
    body = r.get_json()
    if callback in SYNCHRONOUS:
        assert body["error_type"] == "approval_failed" and body["error_text"]
    else:
        assert {"code", "status", "message", "errors"} <= set(body) and body["code"] == r.status_code


@pytest.mark.parametrize("order_id", [FORGED, "x\r\nfake", "x\tfake", "x\x1b[31m", "x\x85fake", "x\u2028fake"])
@pytest.mark.parametrize("callback", CALLBACKS)
def test_control_characters_in_the_url_order_id_are_refused(app, client, shop, callback, order_id, caplog):
    url = kco_url(app, callback, "s-ctl", order_id=order_id)
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])
    with caplog.at_level(logging.DEBUG):
        r = client.post(url, json=None if callback == "push" else body)
    assert r.status_code == 400  # our error body, as for a malformed session id: the URL is bad
    assert r.get_json()["code"] == 400 and "order_id" in r.get_json()["errors"]
    for record in caplog.records:  # nothing that lands in a log line carries the raw id
        assert order_id not in record.getMessage() and "\n" not in record.getMessage()


@pytest.mark.parametrize("callback", ["validation", "notification"])
def test_control_characters_in_the_body_order_id_are_refused(klarna, shop, store, callback, caplog):
    if callback == "validation":
        body = validation_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)], order_id=FORGED)
    else:
        body = {"order_id": FORGED, "event_type": "FRAUD_RISK_ACCEPTED"}
    with caplog.at_level(logging.DEBUG):
        r = klarna(callback, "s-ctl", body)
    assert r.status_code == 400 and "order_id" in str(r.get_json())
    assert all("\n" not in rec.getMessage() for rec in caplog.records)
    assert store.get_state("s-ctl") is None


def test_an_unknown_event_type_is_not_echoed(klarna, store, caplog):
    marker = "ORDER_<script>alert(1)</script>_marker"
    with caplog.at_level(logging.DEBUG):
        r = klarna("notification", "s-evt", {"order_id": "o-1", "event_type": marker})
    assert r.status_code == 400 and "event_type" in r.get_json()["errors"]
    assert "marker" not in r.get_data(as_text=True)
    assert all("marker" not in rec.getMessage() for rec in caplog.records)
    assert "marker" not in str(log_rows(store))


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("callback", CALLBACKS)
def test_other_methods_are_405_with_allow_and_not_recorded(app, client, store, callback, method):
    r = client.open(kco_url(app, callback, "s-m"), method=method)
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST"
    assert r.get_json()["code"] == 405
    assert log_rows(store) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
@pytest.mark.parametrize("callback", [c for c in CALLBACKS if c != "push"])
def test_a_body_that_is_not_declared_json_is_415(app, client, shop, store, callback, content_type):
    if callback == "notification":
        body = '{"order_id": "o-1", "event_type": "FRAUD_RISK_ACCEPTED"}'
    else:

        body = json.dumps(validation_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]))
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post(kco_url(app, callback, "s-ct"), data=body.encode(), headers=headers)
    assert r.status_code == 415
    assert_shape(callback, r)
    assert store.get_state("s-ct") is None


def test_json_with_a_charset_and_an_empty_push_are_fine(app, client, shop):
    body = shipping_service_body([goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)])

    r = client.post(kco_url(app, "address_update", "s-ok"), data=json.dumps(body),
                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200
    r = client.post(kco_url(app, "push", "s-ok", order_id=quote("o-1")))  # no body, no type
    assert r.status_code != 415
