"""The support console's sign-in is throttled per client address (callbacks/support/views.py):
KCO_SUPPORT_AUTH_LIMIT wrong credentials (10 per minute), then 429 with Retry-After in our
error body for every request from that address — the right password too — until the window
ends; other addresses are not affected, and the counters are shared by the workers."""
from __future__ import annotations

import base64
import threading

import pytest

from callbacks.web import throttle

PASSWORD = "s3cret-support"
LIMIT = 10


def basic(password: str, user: str = "support") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def make_app(app_factory, sqlite_url, tmp_path):
    """Apps sharing one counters file, as the workers of one host do."""
    counters = f"file:{tmp_path / 'counters.sqlite3'}"
    return lambda **config: app_factory(DATABASE_URL=sqlite_url, KCO_SUPPORT_PASSWORD=PASSWORD,
                                        KCO_RATE_LIMIT_STORAGE=counters, **config)


def get(client, password: str | None, address: str = "198.51.100.7", **headers):
    auth = basic(password) if password is not None else {}
    return client.get("/support/", headers={**auth, **headers}, environ_base={"REMOTE_ADDR": address})


def test_ten_wrong_passwords_then_429_even_with_the_right_one(make_app):
    client = make_app().test_client()
    assert get(client, PASSWORD).status_code == 200  # the right one before: fine, and not counted
    assert [get(client, f"guess-{i}").status_code for i in range(LIMIT)] == [401] * LIMIT
    for password in ("guess-11", PASSWORD):
        refused = get(client, password)
        assert refused.status_code == 429, password
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        body = refused.get_json()
        assert set(body) == {"code", "status", "message", "errors"} and body["code"] == 429
        assert "Authorization" in body["errors"] and "10 per 1 minute" in body["message"]
    # Another address is not affected, and neither are requests without credentials (the prompt).
    assert get(client, PASSWORD, address="203.0.113.9").status_code == 200
    assert get(client, None, address="203.0.113.9").status_code == 401


def test_a_success_resets_nothing_and_the_prompt_is_no_guess(make_app):
    client = make_app().test_client()
    for _ in range(20):  # a browser's first request, before its sign-in prompt, sends nothing
        assert get(client, None).status_code == 401
    assert [get(client, f"guess-{i}").status_code for i in range(LIMIT - 1)] == [401] * (LIMIT - 1)
    assert [get(client, PASSWORD).status_code for _ in range(5)] == [200] * 5  # not counted
    assert get(client, "guess-10").status_code == 401  # the tenth failure: the last allowed
    assert get(client, PASSWORD).status_code == 429


def test_the_workers_count_the_same_guesses(make_app):
    first, second = make_app().test_client(), make_app().test_client()
    statuses = [get(first if i % 2 else second, f"guess-{i}").status_code for i in range(LIMIT + 1)]
    assert statuses == [401] * LIMIT + [429]


def test_a_parallel_burst_is_cut_at_the_limit(make_app):
    """300 guesses at once: at most the limit of them is ever compared (401); the rest are 429."""
    app = make_app()
    statuses: list[int] = []
    start = threading.Barrier(30)

    def guess(n: int) -> None:
        client = app.test_client()
        start.wait()
        for i in range(10):
            statuses.append(get(client, f"guess-{n}-{i}").status_code)
    threads = [threading.Thread(target=guess, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 300 and statuses.count(401) == LIMIT and statuses.count(429) == 290


def test_behind_a_trusted_proxy_the_address_it_saw_counts(make_app):
    """KCO_TRUSTED_PROXIES=1: the last X-Forwarded-For entry is the client; without it the
    header is the client's own text and is ignored."""
    proxied = make_app(KCO_TRUSTED_PROXIES=1).test_client()
    for i in range(LIMIT):  # all through one proxy, from one client
        assert get(proxied, f"guess-{i}", address="10.0.0.2",
                   **{"X-Forwarded-For": "198.51.100.7"}).status_code == 401
    assert get(proxied, PASSWORD, address="10.0.0.2", **{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
    # Another client through the same proxy: its own count; a forged first entry changes nothing.
    assert get(proxied, PASSWORD, address="10.0.0.2", **{"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    assert get(proxied, PASSWORD, address="10.0.0.2",
               **{"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}).status_code == 429
    direct = make_app().test_client()  # not configured: the header is ignored
    for i in range(LIMIT):
        get(direct, f"guess-{i}", address="192.0.2.1", **{"X-Forwarded-For": f"198.51.100.{i}"})
    assert get(direct, PASSWORD, address="192.0.2.1", **{"X-Forwarded-For": "203.0.113.50"}).status_code == 429


@pytest.mark.parametrize(("address", "counted_as"), [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
])
def test_an_ipv6_client_is_counted_by_its_64(make_app, address, counted_as):
    app = make_app()
    with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
        assert throttle.client_address() == counted_as


def test_a_limit_that_does_not_parse_stops_start_up_naming_it(make_app):
    from config import ConfigError
    with pytest.raises(ConfigError, match="KCO_SUPPORT_AUTH_LIMIT"):
        make_app(KCO_SUPPORT_AUTH_LIMIT="ten a minute")
