"""Webhooks: the outbox written with the event, signed delivery, retries, order, disabling, the
endpoint API and its refusals of private addresses (docs/webhooks.md)."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook, WebhookVerificationError

from callbacks.store.tables import webhook_messages
from callbacks.webhooks import endpoints
from callbacks.webhooks.ssrf import url_problem
from callbacks.webhooks.worker import Deliverer
from tests.receiver import Receiver, until

FAST = (0, 0.05, 0.05, 0.05)


@pytest.fixture
def receiver():
    made = []

    def make(answer=None):
        r = Receiver(answer)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def write(store, sid, n=1, event_type="cart_updated"):
    """n events of session `sid`, each in its own transaction, as the views write them."""
    written = []
    for i in range(n):
        with store.session(sid) as tx:
            written.append(tx.save({**(tx.state or {}), "n": i}, event_type, {"n": i}))
    return [event["id"] for event in written]  # PostgreSQL draws the ids at commit


def worker(store, **kw):
    kw.setdefault("backoff", FAST)
    kw.setdefault("private_allowed", True)
    kw.setdefault("poll", 0.02)
    return Deliverer(store, **kw)


def drain(w, until_done, timeout=30.0):
    import time
    deadline = time.monotonic() + timeout
    while not until_done():
        assert time.monotonic() < deadline, "delivery did not finish"
        if w.run_once() == 0:
            time.sleep(0.01)


def test_an_event_becomes_one_signed_message_per_subscribed_endpoint(store, receiver):
    everything, completed = receiver(), receiver()
    all_ep = endpoints.create(store, everything.url)
    only = endpoints.create(store, completed.url, ["order_completed"])
    [event_id] = write(store, "s-1")
    write(store, "s-1", 1, "order_completed")
    w = worker(store)
    drain(w, lambda: len(everything.received) == 2 and len(completed.received) == 1)
    first = everything.received[0]
    # Standard Webhooks: the receiver verifies with the secret it was given at creation.
    data = Webhook(all_ep["secret"]).verify(first["raw"], first["headers"])
    assert data["type"] == "cart_updated"
    assert data["data"] == {"n": 0, "session": "s-1", "event_id": event_id, "version": 1}
    assert data["data"] == {**store.events_after(0)[0]["data"], "session": "s-1",
                            "event_id": event_id, "version": 1}
    assert data["timestamp"] == store.events_after(0)[0]["at"]
    assert first["headers"]["webhook-id"].startswith("msg_")
    assert [b["type"] for b in completed.bodies()] == ["order_completed"]
    Webhook(only["secret"]).verify(completed.received[0]["raw"], completed.received[0]["headers"])
    with pytest.raises(WebhookVerificationError):  # another endpoint's secret
        Webhook(only["secret"]).verify(first["raw"], first["headers"])


def test_a_wrong_secret_or_an_old_timestamp_fails_verification(store, receiver):
    r = receiver()
    secret = endpoints.create(store, r.url)["secret"]
    write(store, "s-1")
    drain(worker(store), lambda: r.received)
    got = r.received[0]
    Webhook(secret).verify(got["raw"], got["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoints.new_secret()).verify(got["raw"], got["headers"])
    old = {**got["headers"], "webhook-timestamp": str(int(got["at"]) - 600)}
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(got["raw"], old)
    tampered = got["raw"].replace(b'"n":0', b'"n":1')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, got["headers"])


def test_no_endpoint_no_message_and_a_rolled_back_event_has_none(store, receiver):
    write(store, "s-0")
    r = receiver()
    endpoints.create(store, r.url)
    with pytest.raises(RuntimeError):
        with store.session("s-1") as tx:
            tx.save({"n": 1}, "cart_updated", {"n": 1})
            raise RuntimeError("the view failed after deciding")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(webhook_messages)).scalar() == 0


def test_retries_keep_the_webhook_id_and_hold_back_only_that_session(store, receiver):
    # s-bad's first message fails twice; s-good's messages flow meanwhile.
    def answer(n, body):
        if body["data"]["session"] == "s-bad" and body["data"]["n"] == 0:
            bad = [x for x in r.bodies() if x["data"]["session"] == "s-bad"]
            return (500 if len(bad) <= 2 else 204), 0
        return 200, 0
    r = receiver(answer)
    ep = endpoints.create(store, r.url)
    write(store, "s-bad", 3)
    write(store, "s-good", 3)
    w = worker(store, backoff=(0, 0.5, 0.5, 0.5))
    drain(w, lambda: sum(b["data"]["session"] == "s-good" for b in r.bodies()) == 3)
    bad = [b for b in r.bodies() if b["data"]["session"] == "s-bad"]
    # Held back: s-bad's later messages wait while its first is failing. How many tries of
    # the first have happened by now depends on the machine's speed, not on the contract.
    assert bad and {b["data"]["n"] for b in bad} == {0}
    drain(w, lambda: len(r.received) == 8)
    per_session = {}
    for got in r.received:
        per_session.setdefault(got["body"]["data"]["session"], []).append(got)
    assert [g["body"]["data"]["n"] for g in per_session["s-bad"]] == [0, 0, 0, 1, 2]
    ids = {g["headers"]["webhook-id"] for g in per_session["s-bad"][:3]}
    assert len(ids) == 1
    attempts = endpoints.deliveries(store, ep["id"])
    bad = [a for a in attempts if a["session"] == "s-bad"]
    assert [(a["attempt"], a["status"]) for a in bad][:3] == [(1, 500), (2, 500), (3, 204)]
    assert bad[0]["error"] == "HTTP 500" and bad[0]["event_type"] == "cart_updated"
    assert endpoints.deliveries(store, ep["id"], after=attempts[-1]["id"]) == []


def test_a_timeout_and_a_refused_connection_are_failed_attempts(store, receiver):
    slow = receiver(lambda n, body: (200, 1.5 if n == 0 else 0))
    dead = receiver()
    dead_url = dead.url
    dead.close()
    ep_slow = endpoints.create(store, slow.url)
    ep_dead = endpoints.create(store, dead_url)
    write(store, "s-1")
    w = worker(store, timeout=0.5, backoff=(0, 0.05, 10))
    drain(w, lambda: len(endpoints.deliveries(store, ep_slow["id"])) == 2
          and endpoints.deliveries(store, ep_slow["id"])[-1]["status"] == 200)
    first = endpoints.deliveries(store, ep_slow["id"])[0]
    assert first["status"] is None and first["error"].startswith("timeout")
    until(lambda: len(endpoints.deliveries(store, ep_dead["id"])) >= 1, "the dead endpoint's try")
    assert endpoints.deliveries(store, ep_dead["id"])[0]["error"].startswith("network")


def test_after_the_last_attempt_the_message_fails_and_frees_its_session(store, receiver):
    r = receiver(lambda n, body: (500 if body["data"]["n"] == 0 else 200, 0))
    endpoints.create(store, r.url)
    write(store, "s-1", 2)
    w = worker(store, backoff=(0, 0.01, 0.01))
    drain(w, lambda: any(b["data"]["n"] == 1 for b in r.bodies()))
    assert [b["data"]["n"] for b in r.bodies()] == [0, 0, 0, 1]
    with store.engine.connect() as conn:
        states = conn.execute(sa.select(webhook_messages.c.state)
                              .order_by(webhook_messages.c.id)).scalars().all()
    assert states == ["failed", "delivered"]


def test_an_endpoint_failing_too_long_is_disabled_and_says_so(store, receiver):
    r = receiver(lambda n, body: (503, 0))
    ep = endpoints.create(store, r.url)
    write(store, "s-1")
    w = worker(store, backoff=(0, 0.01, 0.01, 0.01, 0.01), disable_after=timedelta(seconds=0.05))
    drain(w, lambda: not endpoints.get(store, ep["id"])["enabled"])
    got = endpoints.get(store, ep["id"])
    assert "every delivery failed since" in got["disabled_reason"]
    tried = len(r.received)
    write(store, "s-1")  # a disabled endpoint gets no new messages
    assert w.run_once() == 0 and len(r.received) == tried


def test_resend_delivers_a_delivered_message_again_with_its_id(store, receiver):
    r = receiver()
    ep = endpoints.create(store, r.url)
    write(store, "s-1")
    w = worker(store)
    drain(w, lambda: len(r.received) == 1)
    message_id = r.received[0]["headers"]["webhook-id"]
    assert endpoints.resend(store, ep["id"], endpoints.message_number(message_id))
    drain(w, lambda: len(r.received) == 2)
    assert r.received[1]["headers"]["webhook-id"] == message_id
    assert not endpoints.resend(store, "ep_other", endpoints.message_number(message_id))


def test_a_claimed_message_is_not_claimed_again_until_its_lease_ends(store, receiver):
    r = receiver()
    endpoints.create(store, r.url)
    write(store, "s-1")
    write(store, "s-2")
    a, b = worker(store, lease=60), worker(store, lease=60)
    first = a.claim(10)
    assert len(first) == 2 and b.claim(10) == []
    # a dies without recording: after the lease the message is b's (a duplicate only now)
    later = first[0].created_at + timedelta(seconds=61)
    assert sorted(m.id for m in b.claim(10, now=later)) == sorted(m.id for m in first)
    from callbacks.webhooks.worker import Outcome
    assert a.record(first[0], Outcome(200, None, 0.01)) is False  # its claim is gone


def test_concurrent_workers_never_deliver_one_message_twice(database_url, app_factory):
    """Several workers, many sessions: every message delivered exactly once (no crash), each
    session in order, and never two attempts of one message at the same time."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers run on PostgreSQL only (SQLite: one worker)")
    app = app_factory(DATABASE_URL=database_url)
    store = app.extensions["kco"].store
    active, overlaps, lock = set(), [], threading.Lock()

    def answer(n, body):
        key = body["data"]["event_id"]
        with lock:
            if key in active:
                overlaps.append(key)
            active.add(key)
        import time
        time.sleep(0.005)
        with lock:
            active.discard(key)
        return 200, 0
    r = Receiver(answer)
    try:
        endpoints.create(store, r.url)
        for s in range(20):
            write(store, f"s-{s}", 5)
        workers = [worker(app_factory(DATABASE_URL=database_url).extensions["kco"].store,
                          concurrency=4) for _ in range(3)]
        threads = [threading.Thread(target=w.run) for w in workers]
        for t in threads:
            t.start()
        try:
            until(lambda: len(r.received) >= 100, "100 deliveries")
        finally:
            for w in workers:
                w.stop()
            for t in threads:
                t.join(10)
        ids = [b["data"]["event_id"] for b in r.bodies()]
        assert len(ids) == len(set(ids)) == 100 and overlaps == []
        for s in range(20):
            versions = [b["data"]["version"] for b in r.bodies() if b["data"]["session"] == f"s-{s}"]
            assert versions == [1, 2, 3, 4, 5]
    finally:
        r.close()


# -- the API --------------------------------------------------------------------------------
def test_endpoint_api_create_list_get_delete(client, api_headers, receiver):
    r = receiver()
    assert client.post("/api/webhook-endpoints", json={"url": r.url}).status_code == 401
    created = client.post("/api/webhook-endpoints", headers=api_headers,
                          json={"url": r.url, "event_types": ["order_completed"],
                                "description": "ERP"})
    assert created.status_code == 201, created.json
    body = created.json
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["order_completed"]
    assert set(body) >= {"id", "url", "event_types", "secret", "created_at"}
    listed = client.get("/api/webhook-endpoints", headers=api_headers).json["endpoints"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    one = client.get(f"/api/webhook-endpoints/{body['id']}", headers=api_headers)
    assert one.status_code == 200 and "secret" not in one.json
    assert client.delete(f"/api/webhook-endpoints/{body['id']}", headers=api_headers).status_code == 204
    assert client.get(f"/api/webhook-endpoints/{body['id']}", headers=api_headers).status_code == 404


def test_endpoint_api_refuses_unknown_fields_and_types(client, api_headers):
    bad = client.post("/api/webhook-endpoints", headers=api_headers,
                      json={"url": "https://example.com/h", "colour": "red"})
    assert bad.status_code == 422 and "colour" in bad.json["errors"]
    bad = client.post("/api/webhook-endpoints", headers=api_headers,
                      json={"url": "https://example.com/h", "event_types": ["nope"]})
    assert bad.status_code == 422 and "event_types.0" in bad.json["errors"]


def test_deliveries_and_resend_through_the_api(app, client, api_headers, receiver):
    r = receiver()
    ep = client.post("/api/webhook-endpoints", headers=api_headers, json={"url": r.url}).json
    store = app.extensions["kco"].store
    write(store, "s-1")
    drain(worker(store), lambda: len(r.received) == 1)
    got = client.get(f"/api/webhook-endpoints/{ep['id']}/deliveries?after=0", headers=api_headers)
    [attempt] = got.json["deliveries"]
    assert attempt["status"] == 200 and attempt["session"] == "s-1" and attempt["attempt"] == 1
    again = client.post(f"/api/webhook-endpoints/{ep['id']}/deliveries/{attempt['message_id']}/resend",
                        headers=api_headers)
    assert again.status_code == 202
    drain(worker(store), lambda: len(r.received) == 2)
    assert client.post(f"/api/webhook-endpoints/{ep['id']}/deliveries/msg_999/resend",
                       headers=api_headers).status_code == 404
    assert "/api/webhook-endpoints" in client.get("/openapi.json").json["paths"]


@pytest.mark.parametrize("url", [
    "http://example.com/hook",            # not https
    "https://127.0.0.1/hook", "https://localhost/hook", "https://[::1]/hook",
    "https://10.0.0.5/hook", "https://192.168.1.1/hook", "https://172.16.0.1/hook",
    "https://169.254.169.254/latest/meta-data", "https://[fe80::1]/hook", "https://0.0.0.0/hook",
    "https://[::ffff:127.0.0.1]/hook", "https://user:pw@93.184.216.34/hook", "ftp://x/",
])
def test_production_refuses_private_addresses_and_plain_http(app_factory, sqlite_url, url):
    app = app_factory(DATABASE_URL=sqlite_url, KCO_WEBHOOK_PRIVATE_URLS=False)
    reply = app.test_client().post("/api/webhook-endpoints", json={"url": url},
                                   headers={"Authorization": f"Bearer {app.config['KCO_API_KEY']}"})
    assert reply.status_code == 422 and "url" in reply.json["errors"], reply.json


def test_every_address_of_a_host_must_be_public():
    def resolve(host, port, proto=None):
        return [(2, 1, 6, "", ("93.184.216.34", port)), (2, 1, 6, "", ("10.1.2.3", port))]
    assert "private" in url_problem("https://mixed.example/h", False, resolve=resolve)
    assert url_problem("https://93.184.216.34/h", False) is None
    assert url_problem("http://127.0.0.1:9/h", True) is None  # development


def test_delivery_time_check_refuses_a_host_that_moved_to_a_private_address(store, receiver):
    r = receiver()
    ep = endpoints.create(store, r.url)  # registered while allowed (development)
    write(store, "s-1")
    w = worker(store, private_allowed=False, backoff=(0, 10))
    assert w.run_once() == 1
    [attempt] = endpoints.deliveries(store, ep["id"])
    assert attempt["error"].startswith("refused") and r.received == []


def test_production_config_forces_the_ssrf_check(monkeypatch):
    import secrets

    from config import ProductionConfig
    for name, value in {"KCO_CALLBACK_SECRET": secrets.token_urlsafe(32),
                        "KCO_API_KEY": secrets.token_urlsafe(32), "KLARNA_PASSWORD": secrets.token_urlsafe(32),
                        "KLARNA_API_URL": "https://api.klarna.com", "KCO_PUBLIC_URL": "https://shop.example",
                        "KLARNA_NA_PASSWORD": secrets.token_urlsafe(32),
                        "KCO_WEBHOOK_PRIVATE_URLS": "1"}.items():
        monkeypatch.setenv(name, value)
    assert ProductionConfig().KCO_WEBHOOK_PRIVATE_URLS is False
