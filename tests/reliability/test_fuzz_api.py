"""Fuzzing the storefront API (/api/*): hypothesis bodies and queries, and schemathesis from
/openapi.json, in-process (WSGI), on SQLite and PostgreSQL, with the sandbox as Klarna.

Proves: no 5xx for any input (a healthy Klarna and database leave no excuse for one), every
error in our body `{code, status, message, errors}`, every reply in the shape the OpenAPI
document promises (schemathesis' response_schema_conformance), and a missing or wrong API key
records nothing.

Long-polls: a valid `wait` is capped at 0.05 s here, or a fuzzer would sleep 30 s per example;
waking is tests/test_longpoll.py's business.
"""
from __future__ import annotations

import math

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from callbacks.store.database import callback_log, events, sessions
from callbacks.web.tokens import poll_token

from . import figures
from .bodies import MARKETS, NASTY_STRINGS, RAW_BODIES, SKUS, broken, encode
from .contract import assert_our_error
from .test_fuzz_kco import url_safe

MAX_TEST_WAIT = 0.05
SIDS = st.one_of(st.sampled_from(["api-1", "api-2", "api-3"]),
                 st.from_regex(r"\A[A-Za-z0-9._~-]{1,128}\Z"))
BAD_SIDS = st.sampled_from(["a" * 129, "ü", "s%0A", "s%00", "s%20p", "%2E%2E"])
CARTS = st.fixed_dictionaries(
    {"items": st.lists(st.fixed_dictionaries({"reference": st.sampled_from(SKUS + ["NOPE"]),
                                              "quantity": st.integers(1, 20)}), max_size=5)},
    optional={"coupon": st.sampled_from([None, "SUMMER10", "summer10", "WELCOME50", "NOPE"])})
MARKET_BODIES = st.fixed_dictionaries(
    {"country": st.sampled_from(MARKETS + ["se", "XX"])},
    optional={"locale": st.sampled_from([None, "sv-SE", "en-US", "fi-FI", "de-DE", "xx-XX"])})


def body_strategy(valid):
    return st.one_of(valid.map(encode), broken(valid).map(encode), RAW_BODIES)


def blocks(wait: str) -> bool:
    """Would this `wait` make the server sleep longer than the test allows?"""
    try:
        value = float(wait)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and value > MAX_TEST_WAIT


QUERY_NUMBERS = st.one_of(st.none(), st.integers(-10, 10**20).map(str), NASTY_STRINGS,
                          st.text(max_size=12), st.sampled_from(["nan", "inf", "-inf", "1e999",
                                                                 "0x10", "1_0", "0.01", "-0"])
                          ).filter(lambda v: v is None or url_safe(v))

REQUESTS = st.one_of(
    st.tuples(st.just("PUT"), st.just("cart"), body_strategy(CARTS)),
    st.tuples(st.just("PUT"), st.just("market"), body_strategy(MARKET_BODIES)),
    st.tuples(st.just("POST"), st.just("checkout"),
              st.one_of(st.sampled_from([b"", b"{}", b" {} "]), RAW_BODIES)),
    st.tuples(st.just("GET"), st.just("state"), st.just(b"")),
    st.tuples(st.just("GET"), st.just("events"), st.just(b"")),
    st.tuples(st.just("GET"), st.just("all-events"), st.just(b"")),
    st.tuples(st.just("GET"), st.just("markets"), st.just(b"")),
)


def counts(store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                     for t in (sessions, events, callback_log))


def path_for(kind: str, sid: str) -> str:
    return {"all-events": "/api/events", "markets": "/api/markets"}.get(
        kind, f"/api/sessions/{sid}/{kind}")


def test_fuzzed_api_requests(rel_app, scale):
    client = rel_app.test_client()
    headers = {"Authorization": f"Bearer {rel_app.config['KCO_API_KEY']}"}
    secret = rel_app.config["KCO_CALLBACK_SECRET"]
    client.put("/api/sessions/api-1/cart", headers=headers,
               json={"items": [{"reference": "TSHIRT-BLUE-M", "quantity": 1}]})

    @scale.hypothesis(100, 1500)
    @given(request=REQUESTS, sid=SIDS, bad_sid=st.one_of(st.none(), BAD_SIDS),
           after=QUERY_NUMBERS, wait=QUERY_NUMBERS.filter(lambda w: w is None or not blocks(w)),
           poll=st.booleans(), etag=st.one_of(st.none(), st.just("*"), st.text(
               alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)))
    def run(request, sid, bad_sid, after, wait, poll, etag):
        figures.example("fuzz /api/*")
        method, kind, body = request
        target = bad_sid or sid
        query = {k: v for k, v in (("after", after), ("wait", wait)) if v is not None}
        send = dict(headers)
        if poll and method == "GET" and kind in ("state", "events"):
            send = {}  # the shopper's browser: its poll token instead of the API key
            query["token"] = poll_token(secret, target)
        if etag is not None:
            send["If-None-Match"] = etag
        response = client.open(path_for(kind, target), method=method, headers=send,
                               query_string=query, data=body, content_type="application/json")
        figures.response("fuzz /api/*", response.status_code)
        status = response.status_code
        assert status < 500, (method, kind, status, response.get_data()[:500])
        if status >= 400:
            assert_our_error(response, status)
        elif status == 200:
            assert response.mimetype == "application/json"
        else:
            assert status == 304 and kind == "state", status

    run()


AUTHORIZATIONS = st.one_of(
    st.none(), st.just(""), st.just("Bearer"), st.just("Bearer "), st.just("Bearer wrong"),
    st.just("Basic dGVzdDp0ZXN0"), st.just("Token test-api-key"), st.just("Bearer test-api-keyX"),
    st.just("Bearer test-api-ke"), st.just("Bearertest-api-key"), st.just("Bearer TEST-API-KEY"),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40))


def test_fuzzed_api_keys_record_nothing(rel_app, scale):
    """No key, a wrong key, another scheme, a browser token where only the key opens, a
    browser token of another session: 401, and nothing recorded."""
    client, store = rel_app.test_client(), rel_app.extensions["kco"].store
    secret, key = rel_app.config["KCO_CALLBACK_SECRET"], rel_app.config["KCO_API_KEY"]

    @scale.hypothesis(60, 400)
    @given(request=REQUESTS, auth=AUTHORIZATIONS.filter(lambda a: a is None or key not in a),
           token_of=st.one_of(st.none(), st.sampled_from(["api-1", "someone-else"])))
    def run(request, auth, token_of):
        figures.example("fuzz /api/* keys")
        method, kind, body = request
        send = {} if auth is None else {"Authorization": auth}
        query = {"token": poll_token(secret, token_of)} if token_of else {}
        # The session's own token opens its writes too (tests/test_browser_token.py); here a
        # write would record, and this test counts on nothing being recorded.
        assume(not (token_of == "api-1" and method != "GET"))
        opens = token_of == "api-1" and kind in ("state", "events")
        response = client.open(path_for(kind, "api-1"), method=method, headers=send,
                               query_string=query, data=body, content_type="application/json")
        figures.response("fuzz /api/* keys", response.status_code)
        if opens:  # the session's own browser token opens its GETs (api-1 does not exist: 404)
            assert response.status_code in (200, 304, 400, 404)
            return
        assert_our_error(response, 401)
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert counts(store) == (0, 0, 0)

    run()


# -- schemathesis -------------------------------------------------------------------------------
def capped(case) -> None:
    wait = case.query.get("wait") if isinstance(case.query, dict) else None
    if wait is not None and blocks(str(wait)):
        case.query["wait"] = MAX_TEST_WAIT


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_against_openapi(rel_app, scale, mode):
    """schemathesis generates requests from /openapi.json (valid ones, then invalid ones) and
    checks not_a_server_error and response_schema_conformance on every reply."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", rel_app)
    headers = {"Authorization": f"Bearer {rel_app.config['KCO_API_KEY']}"}
    checks = [not_a_server_error, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 26  # 25 under /api (3 the catalog, 6 webhooks, 7 orders, the attachment), plus /healthz
    for operation in operations:
        strategy = operation.as_strategy(generation_mode=mode)

        @scale.hypothesis(40, 250)
        @given(case=strategy)
        def run(case):
            figures.example(f"schemathesis {mode.value}")
            capped(case)
            response = case.call(headers=headers)
            figures.response(f"schemathesis {mode.value}", response.status_code)
            case.validate_response(response, checks=checks, headers=headers)

        try:
            run()
        except Unsatisfiable:
            # No input to break (GET /api/markets, /healthz take no parameters and no body).
            assert mode == GenerationMode.NEGATIVE, operation.label
            figures.add(f"schemathesis {mode.value}", "operations with nothing to break")
