"""Fuzzing Klarna's callbacks (/kco/*) with generated bodies and URLs, on SQLite and PostgreSQL.

Whatever arrives with a right token — any JSON, near-valid Klarna bodies, raw junk, nesting
deeper than the parser's recursion limit, odd session ids and order ids — the reply is never a
5xx the design does not call for, every 4xx is in the contract's shape (Klarna's
`{error_type, error_text[, errors]}` for the four synchronous callbacks, our `{code, status,
message, errors}` for everything else), every 200 of a shipping-service callback is an order
Klarna would accept (callbacks/rules/amounts.py), and every callback is in the callback log.

The one designed 5xx here is notification's 503 + Retry-After when Order Management does not
know the order (it cannot be verified; Klarna retries): counted apart, as "designed 503".
"""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from hypothesis import example, given
from hypothesis import strategies as st

from callbacks.klarna.schemas import ORDER_ID
from callbacks.rules import amounts as rules
from callbacks.store.database import callback_log, events, sessions
from callbacks.web.schemas import SESSION_ID
from callbacks.web.tokens import callback_token, poll_token

from ..payloads import validation_body
from ..test_lifecycle import put_cart
from . import figures
from .bodies import NASTY_STRINGS, bodies, encode, valid_notification_body, valid_shipping_body, valid_validation_body
from .contract import assert_klarna_error, assert_our_error

SHIPPING_SERVICE = ("address_update", "shipping_option_update", "country_change")
KLARNA_ERROR_TYPES = {"address_error", "unsupported_shipping_address", "approval_failed"}
VALID_BODIES = {
    "address_update": valid_shipping_body(), "shipping_option_update": valid_shipping_body(),
    "country_change": valid_shipping_body(), "validation": valid_validation_body(),
    "notification": valid_notification_body(), "push": st.just({}),
}
SIDS = st.one_of(st.sampled_from(["fz-known", "fz-empty", "fz-new-1", "fz-new-2"]),
                 st.from_regex(r"\A[A-Za-z0-9._~-]{1,128}\Z"))
BAD_SIDS = st.sampled_from(["", "a" * 129, "a/b", "ü", "s\n", "s\x00", "s p", "s%2F", "s?x=1"])
ORDER_IDS = st.one_of(st.none(), st.sampled_from(["ord-1", "ord-2"]), NASTY_STRINGS,
                      st.text(max_size=300)).filter(lambda s: s is None or url_safe(s))


def url_safe(text: str) -> bool:
    """A URL carries UTF-8: lone surrogates cannot be in one (they go in bodies instead)."""
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


MATCHING = st.tuples(st.sampled_from(["order_id", "purchase_country", "status", "locale"]),
                     st.one_of(st.none(), NASTY_STRINGS, st.text(max_size=300)))


def matching_validation(store, sid: str, field: str, value) -> bytes:
    """The full order of `sid` as Klarna would send it at validation, with `field` = `value`."""
    state = store.get_state(sid)
    country = state["shipping_country"] or state["market"]["country"]
    body = validation_body(state["order"]["order_lines"], currency=state["market"]["currency"],
                           country=country, locale=state["market"]["locale"],
                           order_amount=state["order"]["order_amount"],
                           order_tax_amount=state["order"]["order_tax_amount"])
    body["billing_address"]["country"] = state["billing_country"] or country
    body["billing_address"]["region"] = state["billing_region"]
    body["shipping_address"]["region"] = state["shipping_region"]
    body[field] = value
    return encode(body)


def log_count(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(callback_log)).scalar_one()


def counts(store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                     for t in (sessions, events, callback_log))


def url(app, callback: str, sid: str, order_id: str | None) -> str:
    params = {"session": sid, "token": callback_token(app.config["KCO_CALLBACK_SECRET"], sid)}
    if order_id is not None:
        params["order_id"] = order_id
    return f"/kco/{callback}?{urlencode(params)}"


def designed_503(callback: str, response) -> bool:
    """notification's 503 + Retry-After: Order Management could not confirm the order."""
    return (callback == "notification" and response.status_code == 503
            and bool(response.headers.get("Retry-After")))


def check_reply(callback: str, response, url_ok: bool) -> None:
    status = response.status_code
    if status >= 500:
        if designed_503(callback, response):
            assert_our_error(response, 503)
            return
        raise AssertionError(f"{callback}: {status} {response.get_data(as_text=True)[:500]}")
    if status == 200:
        if callback in SHIPPING_SERVICE:
            reply = response.get_json()
            assert rules.shipping_service_reply_errors(reply) == [], reply
            assert set(reply) == {"order_amount", "order_tax_amount", "order_lines",
                                  "purchase_currency", "shipping_options", "locale"}
        else:
            assert response.get_data() == b""
        return
    if status == 303:
        assert callback == "validation" and response.get_data() == b""
        assert "kco_error=cart_changed" in response.headers["Location"]
        return
    if status == 400 and url_ok and callback not in ("push", "notification"):
        assert_klarna_error(response, KLARNA_ERROR_TYPES)
        return
    assert status in (400, 413) or (status == 401 and not url_ok), (callback, status)
    assert_our_error(response, status)


@pytest.mark.parametrize("callback", ["address_update", "shipping_option_update", "country_change",
                                      "validation", "push", "notification"])
def test_fuzzed_callbacks(rel_app, scale, callback):
    client, store = rel_app.test_client(), rel_app.extensions["kco"].store
    put_cart(rel_app, "fz-known", [("TSHIRT-BLUE-M", 2), ("BOOK-TRAIL-GUIDE", 1)])
    put_cart(rel_app, "fz-empty", [])

    @scale.hypothesis(60, 600)
    @given(body=bodies(VALID_BODIES[callback]), sid=SIDS, order_id=ORDER_IDS,
           bad_sid=st.one_of(st.none(), BAD_SIDS), matching=st.one_of(st.none(), MATCHING))
    # What this suite found (docs/reliability.md, "Bugs found"), replayed on every run:
    @example(body=b"[" * 5000, sid="fz-known", order_id=None, bad_sid=None, matching=None)
    @example(body=b"[" * 990 + b"]" * 990, sid="fz-known", order_id=None, bad_sid=None, matching=None)
    @example(body=b'{"order_amount": 1e999, "x": NaN}', sid="fz-known", order_id=None, bad_sid=None,
             matching=None)
    @example(body=b"{}", sid="fz-known", order_id="o\x00", bad_sid=None, matching=None)
    @example(body=b"{}", sid="fz-known", order_id="o\x00", bad_sid=None, matching=("order_id", None))
    @example(body=b"{}", sid="fz-known", order_id="o" * 300, bad_sid=None, matching=("order_id", None))
    @example(body=b"{}", sid="fz-known", order_id=None, bad_sid=None, matching=("order_id", "o\x00"))
    @example(body=b"{}", sid="fz-known", order_id=None, bad_sid=None, matching=("order_id", "\ud800"))
    @example(body=b"{}", sid="fz-known", order_id=None, bad_sid="s\x00", matching=None)
    def run(body, sid, order_id, bad_sid, matching):
        figures.example("fuzz /kco/*")
        target = bad_sid if bad_sid is not None else sid
        if callback == "validation" and matching is not None:
            # A validation that passes, but for one odd field: it goes all the way to the store.
            target, body = "fz-known", matching_validation(store, "fz-known", *matching)
        before = log_count(store)
        response = client.post(url(rel_app, callback, target, order_id), data=body,
                               content_type="application/json")
        response.close()  # a push does its work when the response is closed
        figures.response("fuzz /kco/*", response.status_code, designed=designed_503(callback, response))
        # A malformed session id or order_id in the URL is our 400, like a wrong token.
        url_ok = bool(SESSION_ID.match(target)) and (not order_id or bool(ORDER_ID.match(order_id)))
        check_reply(callback, response, url_ok)
        # Every callback whose token is right is in the callback log (callbacks/klarna/loghooks.py);
        # an empty session id has no token to be right.
        assert log_count(store) == before + (1 if target else 0), "the callback was not logged"

    run()


def test_fuzzed_tokens_never_record_anything(rel_app, scale):
    """Wrong, missing, truncated, other-session and poll tokens: 401, nothing recorded."""
    client, store = rel_app.test_client(), rel_app.extensions["kco"].store
    secret = rel_app.config["KCO_CALLBACK_SECRET"]
    good = callback_token(secret, "fz-tok")
    tokens = st.one_of(st.none(), st.just(""), st.text(max_size=60), NASTY_STRINGS,
                       st.just(callback_token(secret, "someone-else")), st.just(good[:-1]),
                       st.just(good + "A"), st.just(good.upper()),
                       st.just(callback_token("another-secret", "fz-tok")),
                       st.just(poll_token(secret, "fz-tok"))).filter(
        lambda t: t is None or (t != good and url_safe(t)))

    @scale.hypothesis(40, 300)
    @given(callback=st.sampled_from(["address_update", "shipping_option_update", "country_change",
                                     "validation", "push", "notification"]),
           token=tokens, body=valid_shipping_body())
    def run(callback, token, body):
        figures.example("fuzz /kco/* tokens")
        params = {"session": "fz-tok", "order_id": "ord-1"}
        if token is not None:
            params["token"] = token
        response = client.post(f"/kco/{callback}?{urlencode(params)}", json=body)
        response.close()
        figures.response("fuzz /kco/* tokens", response.status_code)
        assert response.status_code == 401
        assert_our_error(response, 401)
        assert counts(store) == (0, 0, 0)

    run()
