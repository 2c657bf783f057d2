"""Ordering: one session's callbacks arriving all at once, in a shuffled order (docs/design.md §8:
concurrent callbacks for one session serialize and never lose an update).

Per session, a few dozen address_update, shipping_option_update, country_change and validation
callbacks — each with something unique that its event records (a shipping region, a requested
option id, a billing country used once, an order id) — are posted from 16 threads at once.
Afterwards:

* versions are 1..N without gaps, the state's version is N;
* every event is exactly one of the requests, and no refused request (400) left an event;
* replaying the requests serially, in the order the events record, against a fresh database
  gives the same events (type and data), the same replies, and the same final state (ignoring
  `updated_at`): the parallel run is equivalent to that serial one, so no update was lost or
  applied to a stale state.
"""
from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

from callbacks import create_app
from callbacks.rules.shop import load_shop

from ..conftest import kco_url
from ..test_lifecycle import put_cart
from . import figures

SHOP = load_shop()
MARKETS = sorted(SHOP.markets)
SHIPPING_IDS = sorted({o.id for m in SHOP.markets.values() for o in m.shipping})
CART = [("TSHIRT-BLUE-M", 2), ("BOOK-TRAIL-GUIDE", 1)]
EVENT_OF = {"address_update": {"address_updated"}, "shipping_option_update": {"shipping_option_selected"},
            "country_change": {"market_changed"}, "validation": {"validation_passed", "validation_failed"}}


def address(country, region=None):
    return {"country": country, "region": region, "given_name": "Test", "postal_code": "12345"}


def callbacks_for(rnd: random.Random, sid: str, size: int) -> list[dict]:
    """`size` callbacks for `sid`, each with a marker its event records."""
    out, ids, billing = [], rnd.sample(SHIPPING_IDS, len(SHIPPING_IDS)), rnd.sample(MARKETS, len(MARKETS))
    for k in range(size):
        kind = rnd.choice(["address_update"] * 4 + ["shipping_option_update"] * 3
                          + ["country_change"] * 2 + ["validation"])
        if kind == "country_change" and not billing:
            kind = "address_update"
        body = {"order_amount": 0, "order_tax_amount": 0, "order_lines": [],
                "purchase_currency": "SEK", "locale": "sv-SE",
                "shipping_address": address(rnd.choice(MARKETS + ["XX"]), f"{sid}-R{k}".upper())}
        if kind == "address_update":
            marker = body["shipping_address"]["region"]
            if rnd.random() < 0.3:
                body["billing_address"] = address(rnd.choice(MARKETS))
        elif kind == "shipping_option_update":
            marker = ids.pop() if ids and rnd.random() < 0.7 else f"nope-{k}"
            body["selected_shipping_option"] = {"id": marker}
            body["shipping_address"]["country"] = rnd.choice(MARKETS)
        elif kind == "country_change":
            marker = billing.pop()
            body["billing_address"] = address(marker)
            body["shipping_address"]["country"] = rnd.choice(MARKETS)
        else:
            marker = f"ord-{sid}-{k}"
            body.update(order_id=marker, purchase_country="SE", order_amount=rnd.randrange(0, 10**6),
                        order_lines=[{"type": "physical", "reference": "TSHIRT-BLUE-M", "quantity": 2,
                                      "unit_price": 19900, "total_amount": 39800, "tax_rate": 2500,
                                      "total_tax_amount": 7960, "name": "T"}])
            body["shipping_address"]["country"] = rnd.choice(MARKETS)
        out.append({"sid": sid, "callback": kind, "body": body, "marker": marker})
    return out


def marker_of(event: dict) -> str | None:
    data = event["data"]
    return {"address_updated": lambda: (data.get("shipping_region") or {}).get("new"),
            "shipping_option_selected": lambda: data.get("requested"),
            "market_changed": lambda: data["market"]["new"]["country"],
            "validation_passed": lambda: data.get("order_id"),
            "validation_failed": lambda: data.get("order_id")}.get(event["type"], lambda: None)()


def post(app, client, request) -> tuple[int, bytes]:
    response = client.post(kco_url(app, request["callback"], request["sid"]), json=request["body"])
    return response.status_code, response.get_data()


def strip(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "updated_at"}


def test_parallel_out_of_order_callbacks_equal_their_serial_replay(rel_app, scale, tmp_path):
    rnd = random.Random()
    seed = rnd.randrange(10**9)
    rnd.seed(seed)
    store = rel_app.extensions["kco"].store
    sids = [f"order-{i}" for i in range(scale.pick(3, 12))]
    requests_ = []
    for sid in sids:
        put_cart(rel_app, sid, CART)
        requests_ += callbacks_for(rnd, sid, scale.pick(30, 80))
    rnd.shuffle(requests_)
    barrier = threading.Barrier(16)
    local = threading.local()

    def send(request):
        if not hasattr(local, "client"):
            local.client = rel_app.test_client()
            barrier.wait(timeout=30)
        request["reply"] = post(rel_app, local.client, request)
        figures.response("ordering", request["reply"][0])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, requests_))
    served_5xx = [r["reply"] for r in requests_ if r["reply"][0] >= 500]
    assert not served_5xx, (f"seed {seed}: {len(served_5xx)} × 5xx, e.g. {served_5xx[0][0]} "
                            f"{served_5xx[0][1][:300]!r}")

    replay_app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'replay.sqlite3'}"})
    replay_client = replay_app.test_client()
    try:
        for sid in sids:
            events = store.events_after(0, sid=sid, limit=10_000)
            state = store.get_state(sid)
            assert [e["version"] for e in events] == list(range(1, len(events) + 1)), (seed, sid)
            assert state["version"] == len(events), (seed, sid)
            mine = {(r["callback"], r["marker"]): r for r in requests_ if r["sid"] == sid}
            assert len(mine) == sum(1 for r in requests_ if r["sid"] == sid), "markers not unique"
            order, used = [], set()
            for event in events[1:]:  # events[0] is the cart
                key = next(((cb, marker_of(event)) for cb, types in EVENT_OF.items()
                            if event["type"] in types), None)
                assert key in mine and key not in used, (seed, sid, event)
                used.add(key)
                order.append((mine[key], event))
            for request in mine.values():
                if request["reply"][0] == 400:
                    assert (request["callback"], request["marker"]) not in used, (seed, request)
            put_cart(replay_app, sid, CART)
            for request, event in order:
                assert post(replay_app, replay_client, request) == request["reply"], (seed, request)
                replayed = replay_app.extensions["kco"].store.events_after(0, sid=sid, limit=10_000)[-1]
                assert (replayed["type"], replayed["version"], replayed["data"]) == \
                    (event["type"], event["version"], event["data"]), (seed, sid, event["version"])
            final = replay_app.extensions["kco"].store.get_state(sid)
            assert strip(final) == strip(state), (seed, sid)
            figures.add("ordering", "sessions replayed serially, equal", 1)
            figures.add("ordering", "events matched to requests", len(order))
            figures.add("ordering", "callbacks without an event (no change or refused)",
                        len(mine) - len(order))
    finally:
        replay_app.extensions["kco"].store.dispose()
