"""A browser token does what a shopper needs and no more: the shop's order number only with the
API key, and per-session limits on its writes and checkout loads (callbacks/web/throttle.py),
counted across app instances that share the counters; Klarna's callbacks and the API key are
never throttled per session."""
from __future__ import annotations

import json
import uuid

import pytest

from callbacks.web.tokens import browser_token

from .conftest import kco_url
from .payloads import goods_line, shipping_service_body

TSHIRT = "TSHIRT-BLUE-M"
CART = {"items": [{"reference": TSHIRT, "quantity": 1}]}


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def token_for(app, sid: str) -> dict:
    return auth(browser_token(app.config["KCO_CALLBACK_SECRET"], sid))


# -- merchant_reference1: the API key's only -------------------------------------------------
@pytest.mark.parametrize("escaped", [False, True])
def test_a_browser_token_cannot_set_the_shops_order_number(client, app, api_headers, escaped):
    sid = "s-ref"
    assert client.put(f"/api/sessions/{sid}/cart", headers=api_headers,
                      json={**CART, "merchant_reference1": "SHOP-1"}).status_code == 200
    name = "merchant\\u005freference1" if escaped else "merchant_reference1"
    forged = '{"items": [{"reference": "' + TSHIRT + '", "quantity": 2}], "' + name + '": "\u202eEVIL"}'
    for method, path in (("PUT", f"/api/sessions/{sid}/cart"), ("POST", f"/api/sessions/{sid}/checkout")):
        refused = client.open(path, method=method, headers=token_for(app, sid), data=forged,
                              content_type="application/json")
        assert refused.status_code == 403, (method, refused.get_json())
        body = refused.get_json()
        assert body["code"] == 403 and list(body["errors"]) == ["merchant_reference1"]
        assert "merchant_reference1" in body["message"]
    state = client.get(f"/api/sessions/{sid}/state", headers=api_headers).get_json()
    assert state["merchant_reference1"] == "SHOP-1" and state["version"] == 1  # nothing written
    # Without the field the same token writes its cart as before.
    assert client.put(f"/api/sessions/{sid}/cart", headers=token_for(app, sid),
                      json=CART).status_code == 200


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16", "utf-32"])
def test_a_browser_token_cannot_set_it_in_another_json_encoding(client, app, api_headers, encoding):
    """The standard library's JSON reader, which the view falls back to, takes UTF-16 and
    UTF-32 bodies, where the field's name is not the bytes of its UTF-8 spelling (found by
    sending them to a production-mode instance: the reference was set)."""
    sid = "s-ref-enc"
    assert client.put(f"/api/sessions/{sid}/cart", headers=api_headers,
                      json={**CART, "merchant_reference1": "SHOP-1"}).status_code == 200
    for method, path, body in (("PUT", f"/api/sessions/{sid}/cart", {**CART, "merchant_reference1": "EVIL"}),
                               ("POST", f"/api/sessions/{sid}/checkout", {"merchant_reference1": "EVIL"})):
        refused = client.open(path, method=method, headers=token_for(app, sid),
                              data=json.dumps(body).encode(encoding), content_type="application/json")
        assert refused.status_code == 403, (method, encoding, refused.get_json())
        assert list(refused.get_json()["errors"]) == ["merchant_reference1"]
    state = client.get(f"/api/sessions/{sid}/state", headers=api_headers).get_json()
    assert state["merchant_reference1"] == "SHOP-1" and state["version"] == 1


# -- per-session limits ----------------------------------------------------------------------
@pytest.fixture
def limited(app_factory, sqlite_url):
    """Two app instances (as two workers or two hosts would be) sharing Redis, with a key
    prefix of this test's own, a limit of 5 per 10 s."""
    prefix = f"kco-test-{uuid.uuid4().hex}"

    def make(storage="redis://127.0.0.1:6379", **extra):
        return app_factory(DATABASE_URL=sqlite_url, KCO_RATE_LIMIT_STORAGE=storage,
                           KCO_RATE_LIMIT_PREFIX=prefix, KCO_BROWSER_RATE_LIMIT="5 per 10 seconds",
                           **extra)
    yield make
    import redis
    client = redis.Redis(host="127.0.0.1", port=6379)
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)


def redis_up() -> bool:
    import redis
    try:
        return redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def writes(client, app, sid, n):
    return [client.put(f"/api/sessions/{sid}/cart", headers=token_for(app, sid), json=CART)
            for _ in range(n)]


@pytest.mark.skipif(not redis_up(), reason="no Redis at 127.0.0.1:6379")
def test_a_sessions_browser_writes_are_limited_across_instances(limited):
    first, second = limited(), limited()
    a, b = first.test_client(), second.test_client()
    answers = writes(a, first, "s-1", 3) + writes(b, second, "s-1", 2)
    assert [r.status_code for r in answers] == [200] * 5
    over = writes(b, second, "s-1", 1)[0]
    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 10
    assert over.get_json()["code"] == 429 and "session" in over.get_json()["errors"]
    again = writes(a, first, "s-1", 1)[0]  # the other instance counts the same session
    assert again.status_code == 429
    load = a.post("/api/sessions/s-1/checkout", headers=token_for(first, "s-1"))
    assert load.status_code == 429  # a checkout load is a write: Klarna API calls
    # Another session has its own allowance; reads are not limited.
    assert writes(a, first, "s-2", 1)[0].status_code == 200
    assert a.get("/api/sessions/s-1/state", headers=token_for(first, "s-1")).status_code == 200


@pytest.mark.skipif(not redis_up(), reason="no Redis at 127.0.0.1:6379")
def test_the_api_key_and_klarnas_callbacks_are_not_throttled(limited):
    app = limited()
    client = app.test_client()
    key = {"Authorization": f"Bearer {app.config['KCO_API_KEY']}"}
    assert [client.put("/api/sessions/s-1/cart", headers=key, json=CART).status_code
            for _ in range(8)] == [200] * 8
    body = shipping_service_body([goods_line(app.extensions["kco"].shop, TSHIRT, 1, "SEK", 2500)])
    assert [client.post(kco_url(app, "address_update", "s-1"), json=body).status_code
            for _ in range(8)] == [200] * 8
    assert [r.status_code for r in writes(client, app, "s-1", 6)] == [200] * 5 + [429]


def test_the_default_counters_are_shared_by_the_workers_of_a_host(limited, tmp_path):
    """Without Redis: one SQLite file that every worker opens (two apps stand for two workers)."""
    path = f"file:{tmp_path / 'counters.sqlite3'}"
    first, second = limited(path), limited(path)
    answers = writes(first.test_client(), first, "s-1", 3) + writes(second.test_client(), second, "s-1", 3)
    assert [r.status_code for r in answers] == [200] * 5 + [429]


def test_counters_out_of_reach_do_not_stop_the_shop(limited, caplog):
    app = limited("redis://127.0.0.1:1")  # nothing listens there
    assert [r.status_code for r in writes(app.test_client(), app, "s-1", 7)] == [200] * 7
    assert any("rate-limit counters unavailable" in r.getMessage() for r in caplog.records)


def test_a_throttled_write_leaves_no_activity_row(limited, tmp_path):
    """A 429 did nothing: recording each (with its body) would turn a throttled burst into as
    many database writes as it had requests."""
    import sqlalchemy as sa

    from callbacks.store.activity import activity

    app = limited(f"file:{tmp_path / 'counters.sqlite3'}")
    answers = writes(app.test_client(), app, "s-1", 8)
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
    with app.extensions["kco"].store.engine.connect() as conn:
        statuses = [row.status for row in conn.execute(sa.select(activity.c.status))]
    assert sorted(statuses) == [200] * 5
