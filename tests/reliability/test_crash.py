"""Crash: `kill -9` a gunicorn worker while callbacks are in flight (docs/design.md §8: a state change
and its event are one transaction).

Real gunicorn (tests/servers.py, gthread, 2 workers × 8 threads); client threads post
address_update and shipping_option_update for many sessions, every request a distinct change (a
unique shipping region, and for shipping_option_update a unique requested option id, both of
which the event records). Meanwhile the worker holding the most client connections is SIGKILLed
(the short form twice, the full form eight times; gunicorn starts a new one), each kill once the
service has both its workers again and has answered since the last one. The load runs until the
kills are done, a kill has cut a request off, enough requests were answered and the service
answered again after the last kill — conditions, not a duration, so a busy machine makes the
test slower, not wrong (a generous deadline stops a real hang). Afterwards, from the database:

* every request that got a 2xx has exactly its one event (found by its unique marker);
* no session is half-written: versions 1..N without gaps, the state's version is N, and the
  state is the one the newest event describes (its shipping region is that request's);
* every event belongs to a request that was sent; a request cut off by the kill (no response)
  either committed whole or left no trace — both are counted in the figures;
* no 5xx from a worker that stayed alive.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter

import requests

from ..servers import free_port, gunicorn
from . import figures
from .realserver import assert_whole, busiest_worker, callback_url, env_for, gunicorn_pids, prepared, read_back

COUNTRIES = ("SE", "FI", "DE", "NL", "AT", "DK", "NO", "FR", "GB", "CH")


def body(callback: str, marker: int, country: str) -> dict:
    out = {"order_amount": 0, "order_tax_amount": 0, "order_lines": [],
           "purchase_currency": "SEK", "locale": "sv-SE",
           "shipping_address": {"country": country, "region": f"R{marker}",
                                "given_name": "Test", "street_address": "Gatan 1"}}
    if callback == "shipping_option_update":
        out["selected_shipping_option"] = {"id": f"opt-{marker}"}
    return out


def marker_of(event: dict) -> int | None:
    data = event["data"]
    if event["type"] == "address_updated":
        region = (data.get("shipping_region") or {}).get("new")
        return int(region[1:]) if region else None
    if event["type"] == "shipping_option_selected" and data.get("requested"):
        return int(data["requested"][4:])
    return None


def test_kill_9_a_worker_while_callbacks_are_in_flight(database_url, scale, tmp_path):
    sids = [f"crash-{i}" for i in range(scale.pick(24, 120))]
    prepared(database_url, {sid: [("TSHIRT-BLUE-M", 1)] for sid in sids})
    threads = scale.pick(8, 16)
    kills_wanted = scale.pick(2, 8)
    answers_wanted = scale.pick(400, 6000)  # 2xx in all
    after_last_kill = 20                    # 2xx after the last kill: the service recovered
    deadline = time.monotonic() + scale.pick(300, 900)
    sent: dict[int, dict] = {}  # marker → request and its outcome
    lock = threading.Lock()
    counter = iter(range(1, 10**9))
    stop = threading.Event()
    port = free_port()

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        http = requests.Session()  # one connection per request (Connection: close), as Klarna
        http.trust_env = False     # calls: both workers get requests, a kill cuts some off
        http.headers["Connection"] = "close"
        while not stop.is_set() and time.monotonic() < deadline + 30:
            with lock:
                marker = next(counter)
            callback = rnd.choice(("address_update", "shipping_option_update"))
            sid, country = rnd.choice(sids), rnd.choice(COUNTRIES)
            record = {"sid": sid, "callback": callback, "region": f"R{marker}", "status": None}
            with lock:
                sent[marker] = record
            try:
                response = http.post(callback_url(f"http://127.0.0.1:{port}", callback, sid),
                                     json=body(callback, marker, country), timeout=15)
                record["status"] = response.status_code
                if response.status_code >= 500:  # which 5xx, and why: a 503 is not a 500
                    record["body"] = response.text[:300]
            except requests.RequestException as exc:
                record["error"] = type(exc).__name__
            figures.response("crash (kill -9)", record["status"])

    kills = []

    def answered() -> int:
        with lock:
            return sum(1 for r in sent.values() if r["status"] is not None and 200 <= r["status"] < 300)

    def cut() -> bool:
        with lock:
            return any(r["status"] is None and "error" in r for r in sent.values())

    with gunicorn(env_for(database_url, tmp_path / "gunicorn.log"), workers=2, threads=8, port=port):
        pool = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
        for thread in pool:
            thread.start()
        answers_at_kill = 0

        def more_kills() -> bool:  # the planned ones, and more (bounded) until one cut a request
            return len(kills) < kills_wanted or (not cut() and len(kills) < kills_wanted + 12)

        while True:
            now_answered = answered()
            if not more_kills() and now_answered >= answers_wanted \
                    and now_answered - answers_at_kill >= after_last_kill:
                break
            assert time.monotonic() < deadline, (
                f"not within the deadline: {len(kills)} kills of {kills_wanted}, {now_answered} answers "
                f"of {answers_wanted}, {now_answered - answers_at_kill} since the last kill, cut: {cut()}")
            # Both workers up (the last victim's replacement too) and answering since the last kill.
            workers = gunicorn_pids(port)[1] if more_kills() and now_answered > answers_at_kill else []
            if len(workers) == 2:
                victim, busy = busiest_worker(port, workers)
                if busy:  # a worker with requests in flight, or try again in a moment
                    os.kill(victim, signal.SIGKILL)
                    kills.append((victim, busy, len(workers)))
                    answers_at_kill = answered()
            time.sleep(0.02)
        stop.set()
        for thread in pool:
            thread.join(timeout=40)
        assert not any(t.is_alive() for t in pool), "a client thread hung"

    states, by_session, _ = read_back(database_url)
    assert_whole(states, by_session)
    recorded: dict[int, tuple[str, int]] = {}
    for sid, evs in by_session.items():
        for event in evs:
            marker = marker_of(event)
            if marker is None:
                assert event["type"] == "cart_updated" and event["version"] == 1, event
                continue
            assert marker in sent and sent[marker]["sid"] == sid, (marker, sid)
            assert marker not in recorded, f"request {marker} recorded twice"
            recorded[marker] = (sid, event["version"])
    served_5xx = [r for r in sent.values() if r["status"] is not None and r["status"] >= 500]
    assert not served_5xx, (f"a live worker answered 5xx: {Counter(r['status'] for r in served_5xx)}, "
                            f"e.g. {served_5xx[0].get('body')}")
    ok = [m for m, r in sent.items() if r["status"] is not None and 200 <= r["status"] < 300]
    missing = [m for m in ok if m not in recorded]
    assert not missing, f"{len(missing)} acknowledged requests lost, e.g. {sent[missing[0]]}"
    for sid, evs in by_session.items():  # the state is what the newest event says
        newest = next((marker_of(e) for e in reversed(evs) if marker_of(e) is not None), None)
        if newest is not None:
            assert states[sid]["shipping_region"] == sent[newest]["region"], sid
    cut_off = [m for m, r in sent.items() if r["status"] is None]
    assert len(kills) >= kills_wanted
    assert cut_off, f"no request was in flight at a kill: the test proved nothing ({kills})"
    area = "crash (kill -9)"
    figures.add(area, "workers killed", len(kills))
    figures.add(area, "2xx answered, event and state found", len(ok))
    figures.add(area, "cut off by the kill", len(cut_off))
    figures.add(area, "cut off but committed whole", sum(1 for m in cut_off if m in recorded))
    figures.add(area, "lost or half-written", 0)
    figures.add(area, "sessions checked", len(by_session))
