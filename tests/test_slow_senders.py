"""Slow senders (callbacks/web/deadline.py): a request body arrives within KCO_BODY_TIMEOUT or
the request is answered 408 and its connection closed; a sender that is neither Klarna nor the
API key waits for its body in one of a few places (4 per session, and the threads the
long-polls leave), beyond them it is answered at once; a body nobody reads is not waited for.

The real thing runs gunicorn as the Procfile does (its workers and threads, gunicorn.conf.py)
with raw sockets on 127.0.0.1 (the helpers of tests/reliability/test_rejections.py's "slow
bodies" cell); the places are also checked in-process, where a body can be held back exactly.
"""
from __future__ import annotations

import http.client
import io
import json
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from callbacks.web import deadline
from callbacks.web.tokens import browser_token
from config import Config, ConfigError

from .reliability.realserver import API_KEY, SECRET, callback_path, env_for, post_head, prepared
from .servers import gunicorn, procfile_concurrency, self_signed

TIMEOUT = 3  # KCO_BODY_TIMEOUT of the servers below: seconds a body may take
SLACK = 3.0  # seconds beyond it that an answer may take on a busy 2-core machine
WAIT = 20  # seconds before an in-process test gives up on a thread: a failure, never a pass
CART = {"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}], "pad": "x" * 600}
KLARNA_BODY = {"order_amount": 0, "order_tax_amount": 0, "order_lines": [], "purchase_currency": "SEK",
               "shipping_address": {"country": "SE"}}


# -- a raw client that sends its body a byte at a time ------------------------------------------
@dataclass
class Slow:
    """One connection: its head went out at `started`; `answer` is (status, JSON body) once the
    server answered, or None if it dropped the connection without an answer."""
    sock: socket.socket
    payload: bytes
    started: float
    sent: int = 0
    received: bytes = b""
    ended: float | None = None
    answer: tuple[int, dict] | None = None
    events: list = field(default_factory=list)


def parse_reply(data: bytes) -> tuple[int, dict] | None:
    if not data:
        return None

    class Replayed:
        def makefile(self, *_args, **_kwargs):
            return io.BytesIO(data)
    response = http.client.HTTPResponse(Replayed())  # type: ignore[arg-type]
    response.begin()
    body = response.read()
    return response.status, json.loads(body) if body else {}


def open_slow(port: int, head: bytes, payload: bytes) -> Slow:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head)
    sock.setblocking(False)
    return Slow(sock, payload, time.monotonic())


class Dribbler(threading.Thread):
    """Sends every open connection one more byte of its body each `pace` seconds, and reads
    whatever the server answers, until the server has closed every connection."""

    def __init__(self, slow: list[Slow], pace: float = 0.5):
        super().__init__(daemon=True)
        self.slow, self.pace, self.done = slow, pace, threading.Event()

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for conn in self.slow:
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        open_ = set(range(len(self.slow)))
        next_byte = time.monotonic()
        while open_:
            for key, _ in selector.select(timeout=max(0.0, next_byte - time.monotonic())):
                conn = key.data
                try:
                    chunk = conn.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:  # reset: dropped
                    chunk = b""
                if chunk:
                    conn.received += chunk
                    continue
                self._end(selector, conn)
                open_.discard(self.slow.index(conn))
            if time.monotonic() >= next_byte:
                for i in list(open_):
                    conn = self.slow[i]
                    try:
                        if conn.sent < len(conn.payload) - 1:  # never the last byte
                            conn.sent += conn.sock.send(conn.payload[conn.sent:conn.sent + 1])
                    except OSError:
                        pass  # the server shut it: its answer (or EOF) is on the way
                next_byte = time.monotonic() + self.pace
        self.done.set()

    @staticmethod
    def _end(selector: selectors.BaseSelector, conn: Slow) -> None:
        selector.unregister(conn.sock)
        conn.sock.close()
        conn.ended = time.monotonic()
        conn.answer = parse_reply(conn.received)


# -- the Procfile's server ----------------------------------------------------------------------
@pytest.fixture
def procfile_server(sqlite_url, tmp_path):
    """gunicorn with the Procfile's workers and threads, a body deadline of TIMEOUT seconds and
    throttle counters of its own; yields (base URL, port, workers, threads, start)."""
    prepared(sqlite_url, {})
    workers, threads = procfile_concurrency()

    def start(tls=None, **env):
        full = {**env_for(sqlite_url, tmp_path / "gunicorn.log"), "KCO_BODY_TIMEOUT": str(TIMEOUT),
                "KCO_RATE_LIMIT_STORAGE": f"file:{tmp_path / 'counters.sqlite3'}", **env}
        return gunicorn(full, workers=workers, threads=threads, tls=tls)
    return workers, threads, start


@pytest.mark.parametrize("rate_limit", ["30 per 10 seconds", "100000 per 10 seconds"],
                         ids=["default throttle", "no throttle"])
def test_more_slow_bodies_under_one_browser_token_than_threads_leave_klarna_answered(
        procfile_server, rate_limit):
    """300 connections send `PUT cart` with one browser token and then the body a byte every
    half second; meanwhile Klarna's callbacks keep being answered. Every slow request is
    answered 408 (it waited in one of the session's places until the deadline) or at once
    429 (no place left, or the session's rate limit), or dropped — within the deadline, never
    2xx, never 5xx; every callback is answered 200 in well under Klarna's 3 s."""
    workers, threads, start = procfile_server
    slow_count = workers * threads + 44  # 300 with the Procfile's 2 × 128
    sid = "slow-shopper"
    token = browser_token(SECRET, sid)
    payload = json.dumps(CART).encode()
    head = post_head(f"/api/sessions/{sid}/cart", method="PUT", length=len(payload),
                     extra=f"\r\nAuthorization: Bearer {token}")
    with start(KCO_BROWSER_RATE_LIMIT=rate_limit) as base:
        port = int(base.rsplit(":", 1)[1])
        slow = [open_slow(port, head, payload) for _ in range(slow_count)]
        dribbler = Dribbler(slow)
        dribbler.start()
        http_ = requests.Session()
        http_.trust_env = False
        latencies, statuses, n, began = [], [], 0, time.monotonic()
        slowest_at = 0.0
        while not dribbler.done.is_set() or n < 10:  # until the server has closed every slow one
            started = time.monotonic()
            reply = http_.post(f"{base}{callback_path('address_update', f'prompt-{n}')}",
                               json=KLARNA_BODY, timeout=10)
            latencies.append(time.monotonic() - started)
            if latencies[-1] == max(latencies):
                slowest_at = started - began
            statuses.append(reply.status_code)
            n += 1
        assert dribbler.done.wait(TIMEOUT + SLACK + 30)
    assert set(statuses) == {200}, statuses
    late = [round(c.ended - c.started, 2) for c in slow if c.ended - c.started > TIMEOUT + SLACK]
    assert not late, f"answered after the deadline: {late}"
    outcomes: dict[int | None, int] = {}
    for conn in slow:
        status = conn.answer[0] if conn.answer else None
        outcomes[status] = outcomes.get(status, 0) + 1
        if conn.answer:
            assert status in (408, 429, 503), conn.answer
            assert set(conn.answer[1]) == {"code", "status", "message", "errors"}, conn.answer
    assert outcomes.get(408, 0) >= 1, outcomes  # the deadline, not only the refusals, answered
    assert outcomes.get(408, 0) <= workers * deadline.SESSION_WAITS, outcomes
    ordered = sorted(latencies)
    print(f"\n{slow_count} slow bodies: {outcomes}; {n} callbacks, median "
          f"{ordered[len(ordered) // 2] * 1000:.0f} ms, slowest {ordered[-1] * 1000:.0f} ms ({slowest_at:.1f} s in)")
    # Aimed at < 1 s throughout; asserted with room for a busy machine, inside Klarna's 3 s
    # (validation, after which it approves on silence). Before the deadline: 10 s timeouts.
    assert ordered[len(ordered) // 2] < 0.25 and ordered[-1] < 2.5, \
        f"median {ordered[len(ordered) // 2]:.2f} s, slowest {ordered[-1]:.2f} s"


def test_a_body_that_stops_is_answered_408_in_the_contracts_shape_and_the_connection_closed(
        procfile_server):
    _, _, start = procfile_server
    payload = json.dumps(KLARNA_BODY).encode()
    cart = json.dumps(CART).encode()
    with start() as base:
        port = int(base.rsplit(":", 1)[1])
        cases = [  # Klarna's synchronous callback: Klarna's shape; the API key's cart: ours
            open_slow(port, post_head(callback_path("address_update", "stalled-1"),
                                      length=len(payload)), payload),
            open_slow(port, post_head("/api/sessions/stalled-2/cart", method="PUT", length=len(cart),
                                      extra=f"\r\nAuthorization: Bearer {API_KEY}"), cart),
        ]
        dribbler = Dribbler(cases, pace=1.0)
        dribbler.start()
        assert dribbler.done.wait(TIMEOUT + SLACK + 10)
    klarna, api = (c.answer for c in cases)
    assert klarna is not None and klarna[0] == 408 and klarna[1]["error_type"] == "approval_failed"
    assert api is not None and api[0] == 408 and api[1]["code"] == 408 and "_body" in api[1]["errors"]
    for conn in cases:  # bounded by the deadline (the body would have taken minutes)
        assert TIMEOUT - 0.5 <= conn.ended - conn.started <= TIMEOUT + SLACK


def test_an_unread_body_is_not_waited_for(procfile_server):
    """A wrong token is answered before the body is read: the connection is then closed, not
    drained for seconds while the client dribbles on; a refused body that has all arrived is
    read, and the connection kept for the next request."""
    _, _, start = procfile_server
    payload = json.dumps(KLARNA_BODY).encode()
    with start(KCO_BODY_TIMEOUT="30") as base:  # only the unread-body rule can close it early
        port = int(base.rsplit(":", 1)[1])
        forged = open_slow(port, post_head(callback_path("address_update", "forged", token="wrong"),
                                           length=len(payload)), payload)
        dribbler = Dribbler([forged], pace=0.2)
        dribbler.start()
        assert dribbler.done.wait(20)
        assert forged.answer is not None and forged.answer[0] == 401
        # gunicorn alone drains an unread body for 5 s before it closes: here it is at once.
        assert forged.ended - forged.started < 2.5, forged.ended - forged.started
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(post_head(callback_path("address_update", "forged", token="wrong"),
                                   length=len(payload)) + payload)
            first = http.client.HTTPResponse(sock)
            first.begin()
            first.read()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            second = http.client.HTTPResponse(sock)
            second.begin()
            assert (first.status, second.status) == (401, 200)


def test_refused_and_late_bodies_are_answered_in_tls_where_gunicorn_terminates_it(procfile_server, tmp_path):
    """With gunicorn's own --certfile, the read side of a connection whose body is not waited
    for (a wrong token) or came too late (408) is shut on the TCP socket under the TLS one:
    Python's SSLSocket.shutdown also drops the TLS session, and the answer then went out in
    plain text on the TLS connection (the client saw `WRONG_VERSION_NUMBER`, not a 401/408)."""
    tls = self_signed(tmp_path)
    if tls is None:
        pytest.skip("no openssl command to make a certificate with")
    _, _, start = procfile_server
    payload = json.dumps(KLARNA_BODY).encode()
    context = ssl.create_default_context(cafile=str(tls[0]))
    with start(tls=tls) as base:
        port = int(base.rsplit(":", 1)[1])
        for token, status in (("wrong", 401), (None, 408)):
            path = callback_path("address_update", f"tls-{status}", **({"token": token} if token else {}))
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT + SLACK + 10) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(post_head(path, length=len(payload)) + payload[:5])  # the rest never comes
                reply = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
                reply.begin()  # a reply in plain text here: ssl.SSLError WRONG_VERSION_NUMBER
                body = json.loads(reply.read())
                assert reply.status == status, body
                assert body.get("error_type") == "approval_failed" if status == 408 else body["code"] == 401


# -- in-process: the places, exactly ----------------------------------------------------------
class HeldBody(io.RawIOBase):
    """A request body that has not arrived until `arrived` is set."""

    def __init__(self, data: bytes):
        self.data, self.arrived, self.reading = io.BytesIO(data), threading.Event(), threading.Event()

    def readable(self):
        return True

    def readinto(self, buffer):
        self.reading.set()
        assert self.arrived.wait(WAIT)
        chunk = self.data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def put_held(app, sid: str, headers: dict, results: dict, name: str) -> HeldBody:
    """PUT cart whose body is held back, in a thread; its status lands in results[name]."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    data = json.dumps({"items": CART["items"]}).encode()
    held = HeldBody(data)

    def put():
        environ = EnvironBuilder(f"/api/sessions/{sid}/cart", method="PUT", data=data, headers=headers,
                                 content_type="application/json").get_environ()
        environ["wsgi.input"] = io.BufferedReader(held)
        _, status, _ = run_wsgi_app(app, environ, buffered=True)
        results[name] = int(status.split()[0])
    threading.Thread(target=put, daemon=True).start()
    assert held.reading.wait(WAIT)  # it holds its place now
    return held


def token_headers(app, sid: str) -> dict:
    return {"Authorization": f"Bearer {browser_token(app.config['KCO_CALLBACK_SECRET'], sid)}"}


def wait_for(condition, timeout: float = WAIT) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_one_sessions_browser_token_waits_in_at_most_four_places(app_factory, sqlite_url, api_headers):
    app = app_factory(DATABASE_URL=sqlite_url)
    client, results = app.test_client(), {}
    cart = {"items": CART["items"]}
    held = [put_held(app, "s-1", token_headers(app, "s-1"), results, f"held-{i}")
            for i in range(deadline.SESSION_WAITS)]
    over = client.put("/api/sessions/s-1/cart", headers=token_headers(app, "s-1"), json=cart)
    assert over.status_code == 429 and over.headers["Retry-After"] == "1"
    assert over.get_json()["code"] == 429 and "session" in over.get_json()["errors"]
    # Another session, the API key on this one, and Klarna are not held up by it.
    assert client.put("/api/sessions/s-2/cart", headers=token_headers(app, "s-2"), json=cart).status_code == 200
    assert client.put("/api/sessions/s-1/cart", headers=api_headers, json=cart).status_code == 200
    for body in held:
        body.arrived.set()
    assert wait_for(lambda: len(results) == len(held))
    assert set(results.values()) == {200}
    assert app.extensions["kco_body_gate"].waiting == 0
    assert client.put("/api/sessions/s-1/cart", headers=token_headers(app, "s-1"), json=cart).status_code == 200


def test_waiting_bodies_and_long_polls_share_the_threads_klarna_keeps(app_factory, sqlite_url, api_headers):
    """KCO_LONGPOLL_MAX_WAITERS (in gunicorn: threads less a reserve) bounds waiting bodies and
    long-polls together; the API key's and Klarna's bodies take no place."""
    app = app_factory(DATABASE_URL=sqlite_url, KCO_LONGPOLL_MAX_WAITERS=2)
    client, results = app.test_client(), {}
    cart = {"items": CART["items"]}
    assert client.put("/api/sessions/s-9/cart", headers=api_headers, json=cart).status_code == 200
    held = [put_held(app, f"s-{i}", token_headers(app, f"s-{i}"), results, f"held-{i}") for i in range(2)]
    full = client.put("/api/sessions/s-9/cart", headers=token_headers(app, "s-9"), json=cart)
    assert full.status_code == 503 and full.headers["Retry-After"]
    last = client.get("/api/sessions/s-9/events?after=0", headers=api_headers).get_json()["last_id"]
    poll = client.get(f"/api/sessions/s-9/events?after={last}&wait=5", headers=token_headers(app, "s-9"))
    assert poll.status_code == 503  # the long-poll finds no place either
    assert client.put("/api/sessions/s-9/cart", headers=api_headers, json=cart).status_code == 200
    held[0].arrived.set()
    assert wait_for(lambda: "held-0" in results)
    assert client.put("/api/sessions/s-9/cart", headers=token_headers(app, "s-9"), json=cart).status_code == 200
    held[1].arrived.set()
    assert wait_for(lambda: len(results) == 2) and set(results.values()) == {200}


@pytest.mark.parametrize("value", ["ten", "0", "2.5"])
def test_a_body_timeout_that_is_not_a_whole_number_of_seconds_is_refused(monkeypatch, value):
    monkeypatch.setenv("KCO_BODY_TIMEOUT", value)
    with pytest.raises(ConfigError, match="KCO_BODY_TIMEOUT"):
        Config()
