"""The callback log (docs/design.md §8): every Klarna callback, scrubbed, for support and replay.

One `after_request` hook on the `kco` blueprint (`install(bp)`, plus a `before_request` that
only notes the start time) records, for every callback whose token is right, whatever the
view answered — 200, 303, 400, 413, 500 alike: the scrubbed request body, the reply, the
status and how long we took. A request with a missing or wrong token is NOT recorded (docs/design.md §6.1:
"nothing recorded"), neither in the table nor in the log; it is only counted in the metrics.
The same hook feeds the Prometheus counters and histogram and writes one Python log line.

What is kept is decided by an ALLOW-LIST (issue 10.4): only the fields a decision or a replay
uses, each only when its value looks like what Klarna sends there, at any depth below the
containers that hold them (order lines, addresses, shipping options):

* countries, region (a state code such as CA or ny), currencies, locale, types, statuses, the
  fraud event types;
* amounts, quantities, prices and tax rates (numbers only);
* line references, shipping option ids and order ids (text without control characters).

Every other value — names, addresses, e-mails, phones, identity numbers, `last_four_ssn`,
`merchant_reference1/2`, `merchant_data`, `attachment`, product names and URLs, camelCase and
unknown keys, free text — becomes "[scrubbed]", whole (a subtree too); absent, empty and true/false
values are kept as they are, so support can still see that a field was empty. An unknown key
that does not read like a field name is renamed, since a key can carry data too. Our own reply
words (error_type, error_text, message, errors, location) are kept in the reply, and a `token=`
in any URL that is kept is scrubbed: a token would let whoever reads the log forge callbacks.
Our own 200 reply to a shipping-service callback is stored as sent: it is built from the
session's state, whose only caller-given values are ones the request's allow-list keeps.

A shipping-service callback or an approved validation writes its row in the session's own
transaction (record_in); every other callback's row is written by the hook, in a transaction
of its own.

A replay from the log (`flask kco replay --from-log`) needs nothing more: the callbacks decide
from the cart's lines, the amounts, the currency, locale and the addresses' country and region.
The retention command is `flask kco purge --older-than DAYS` (callbacks/cli/commands.py).
"""
from __future__ import annotations

import json
import logging
import math
import re
from contextlib import nullcontext
from time import perf_counter
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from callbacks.store import faults
from callbacks.web.body import too_deep
from callbacks.web.tokens import CALLBACK, check_token

log = logging.getLogger("callbacks.klarna.calllog")

SCRUBBED = "[scrubbed]"
TOKEN_IN_URL = re.compile(r"([?&]token=)[^&#\s\"']*", re.IGNORECASE)

_ID = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]{1,255}")
_WORD = re.compile(r"[a-z][a-z_]{0,39}", re.IGNORECASE)
_NUMBER = "number"
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_AMOUNTS = ("order_amount", "order_tax_amount")
_LINE_AMOUNTS = ("quantity", "unit_price", "tax_rate", "total_amount", "total_discount_amount",
                 "total_tax_amount")
# What is kept, per place in Klarna's order: each key's value must also look right.
ADDRESS = {"country": _COUNTRY, "region": re.compile(r"[A-Za-z0-9]{1,3}|[A-Za-z]{2}-[A-Za-z0-9]{1,3}")}
LINE = {"type": _WORD, "reference": _ID, **dict.fromkeys(_LINE_AMOUNTS, _NUMBER)}
SHIPPING_OPTION = {"id": _ID, **dict.fromkeys(("price", "tax_amount", "tax_rate"), _NUMBER)}
ORDER = {"order_id": _ID, "purchase_country": _COUNTRY, "purchase_currency": re.compile(r"[A-Za-z]{3}"),
         "locale": re.compile(r"[A-Za-z]{2}(?:-[A-Za-z]{2})*"), "status": _WORD,
         "event_type": re.compile(r"FRAUD_RISK_(?:ACCEPTED|REJECTED|STOPPED)"),
         **dict.fromkeys(_AMOUNTS, _NUMBER)}
CONTAINERS = {"order_lines": LINE, "billing_address": ADDRESS, "shipping_address": ADDRESS,
              "selected_shipping_option": SHIPPING_OPTION, "shipping_options": SHIPPING_OPTION}
OUR_WORDS = frozenset({"error_type", "error_text", "message", "errors", "location", "code",
                       "status"})  # kept in replies: our words, never the caller's
# Key names shown as they are (their values scrubbed): Klarna's own field names. Any other key
# is renamed, since a key can carry data as well as a value can.
KNOWN_KEYS = frozenset({
    *ORDER, *CONTAINERS, *LINE, *ADDRESS, *SHIPPING_OPTION, *OUR_WORDS, "_omitted",
    "name", "customer", "merchant_urls", "html_snippet", "merchant_reference1",
    "merchant_reference2", "started_at", "completed_at", "last_modified_at", "options",
    "attachment", "external_payment_methods", "external_checkouts", "shipping_countries",
    "billing_countries", "merchant_data", "gui", "merchant_requested", "recurring",
    "recurring_token", "recurring_description", "billing_address_is_editable", "tags",
    "payment_type_allows_increase", "shipping_details", "discounts",
    "given_name", "family_name", "organization_name", "email", "title", "street_address",
    "street_address2", "street_name", "street_number", "house_extension", "postal_code", "city",
    "phone", "care_of", "reference", "attention", "quantity_unit", "product_url", "image_url",
    "product_identifiers", "subscription", "shipping_attributes", "description", "promo",
    "preselected", "shipping_method", "delivery_details", "tms_reference", "selected_addons",
    "addons",
})


def scrub(value: Any, *, reply: bool = False, allowed: dict | None = None, depth: int = 0) -> Any:
    """A copy of `value` keeping only what the allow-list above keeps; `reply=True` for our
    own replies, whose error words are ours, not the caller's. Lists nested deeper than
    MAX_DEPTH are scrubbed whole (only lists in lists recurse without a container key)."""
    allowed = ORDER if allowed is None else allowed
    if type(value) is dict:
        return _dict(value, reply, allowed)
    if type(value) is list:
        if depth >= MAX_DEPTH:
            return SCRUBBED
        return [scrub(item, reply=reply, allowed=allowed, depth=depth + 1) for item in value]
    return value if value is None or value == "" or isinstance(value, bool) else SCRUBBED


def _dict(value: dict, reply: bool, allowed: dict) -> dict:
    # The hot loop of the log: a 1000-line order has ~11,000 fields. Absent, empty and boolean
    # values are kept as they are; every other value is judged by _field.
    return {(key if key in KNOWN_KEYS else f"[scrubbed key {i}]"):
            (item if item is None or item is True or item is False or item == ""
             else _field(key, item, reply, allowed))
            for i, (key, item) in enumerate(value.items())}


def _field(key: Any, value: Any, reply: bool, allowed: dict) -> Any:
    rule = allowed.get(key)
    if rule is _NUMBER:  # no amount key is one of OUR_WORDS, a container or _omitted
        return value if type(value) is int or type(value) is float else SCRUBBED
    if reply and key in OUR_WORDS:
        return _no_token(value)
    if key == "_omitted" and allowed is ORDER and isinstance(value, str):
        return value  # our own note that the body was not JSON
    if allowed is ORDER and key in CONTAINERS and isinstance(value, (dict, list)):
        if key == "order_lines" and not reply and type(value) is list:
            return [_line(line) if type(line) is dict else scrub(line, allowed=LINE, depth=1)
                    for line in value]
        return scrub(value, reply=reply, allowed=CONTAINERS[key])
    if rule is not None and isinstance(value, str) and rule.fullmatch(value):
        return value
    return SCRUBBED


_LINE_NUMBERS = frozenset(_LINE_AMOUNTS)
_LINE_TEXTS = {"type": _WORD, "reference": _ID}


def _line(line: dict) -> dict:
    """_dict(line, False, LINE), unrolled: a 1000-line order's lines were most of the log's
    CPU. Same verdicts: numbers where LINE wants numbers, matching text where it wants text."""
    return {(key if key in KNOWN_KEYS else f"[scrubbed key {i}]"):
            (item if (item is None or item is True or item is False or item == ""
                      or (key in _LINE_NUMBERS and (type(item) is int or type(item) is float))
                      or (type(item) is str and key in _LINE_TEXTS
                          and _LINE_TEXTS[key].fullmatch(item)))
             else SCRUBBED)
            for i, (key, item) in enumerate(line.items())}


def _no_token(value: Any) -> Any:
    if isinstance(value, str) and "token=" in value.lower():
        return TOKEN_IN_URL.sub(r"\g<1>" + SCRUBBED, value)
    if isinstance(value, (dict, list)):
        return json.loads(TOKEN_IN_URL.sub(r"\g<1>" + SCRUBBED, json.dumps(value)))
    return value


def install(bp: Blueprint) -> None:
    """Hook the log onto Klarna's blueprint; call once, right after creating it, so the start
    time is taken before the token check."""
    bp.before_request(_start)
    bp.after_request(_record)


_PER_REQUEST = ("strict_json", "kco_reply", "kco_pending_log", "kco_logged", "kco_token_ok")


def _start() -> None:
    # A CLI replay (or a test) sends several requests inside one app context, whose `g` they
    # share: nothing of the last request may be taken for this one's.
    for name in _PER_REQUEST:
        g.pop(name, None)
    g.kco_callback_started = perf_counter()


def _elapsed() -> float:
    started = g.get("kco_callback_started")
    return perf_counter() - started if started is not None else 0.0


def _callback() -> str:
    return (request.endpoint or "kco.unknown").rsplit(".", 1)[-1]


def _record(response: Response) -> Response:
    seconds, callback = _elapsed(), _callback()
    g.pop("kco_callback_started", None)
    try:
        metrics = current_app.extensions.get("kco_metrics")
        if metrics is not None:
            metrics.observe_callback(callback, response.status_code, seconds)
        sid, token = request.args.get("session"), request.args.get("token")
        token_ok = g.pop("kco_token_ok", None)  # the view's verdict (views.verify_token)
        if token_ok is None:
            token_ok = check_token(current_app.config["KCO_CALLBACK_SECRET"], CALLBACK, sid, token)
        if not token_ok:
            return response  # a wrong token leaves no trace (docs/design.md §6.1)
        if response.status_code == 413:
            # An oversize body is refused with nothing recorded (issue 6): a log line only.
            log.warning("kco %s session=%s -> 413 (body over 1 MiB)", callback, sid)
            return response
        written = g.pop("kco_logged", None)
        if written is not None and response.status_code == 200:  # by record_in, with the state
            row = written
        else:
            row = _row(callback, response.status_code, _reply_body(response), seconds)
            current_app.extensions["kco"].store.log_callback(**row)
        _log_line(row, seconds if written is None else row["duration_ms"] / 1000)
    except Exception as exc:  # noqa: BLE001 - the log must never break Klarna's reply
        if faults.is_fault(exc):  # the database is away: one line, no traceback
            log.warning("could not record the %s callback: %s", callback, faults.describe(exc))
        else:
            log.exception("could not record the %s callback", callback)
    return response


def record_in(conn, status: int, reply_body: Any) -> None:
    """Write this callback's log row in the caller's open transaction: the session's own, so
    that a callback that changes a session commits once, not twice (the row is the same the
    after_request hook would write; it then only writes the log line). If that transaction
    rolls back, so does the row, and the hook writes the refusal as usual; if the row alone
    fails, only the row is undone (a savepoint on PostgreSQL; SQLite undoes the statement)
    and the callback goes on, unless SQLite gave the whole transaction up (disk full, I/O):
    then the callback fails whole."""
    g.kco_reply = reply_body
    callback = _callback()
    row = _row(callback, status, reply_body, _elapsed())
    store = current_app.extensions["kco"].store
    # A failing statement aborts a PostgreSQL transaction: there the row gets a savepoint, so
    # that it cannot undo the state. SQLite undoes only the failing statement.
    guard = conn.begin_nested if store.is_postgres else nullcontext
    try:
        with guard():
            store.log_callback(**row, conn=conn)
    except Exception as exc:  # noqa: BLE001 - the hook tries once more in a transaction of its own
        if conn.invalidated:
            raise  # the connection died under the transaction: all of it is lost (a 503)
        if not store.is_postgres and not conn.connection.driver_connection.in_transaction:
            raise  # SQLite gave up the whole transaction (disk full, I/O): fail, write nothing
        log.warning("could not record the %s callback with its session; trying on its own",
                    callback, exc_info=not faults.is_fault(exc))
        return
    g.kco_pending_log = row


def committed() -> Any:
    """The transaction record_in wrote to has committed: the hook must not write the row
    again. Returns the reply body record_in logged, for the view to send."""
    g.kco_logged = g.pop("kco_pending_log", None)
    return g.get("kco_reply")


def _row(callback: str, status: int, reply_body: Any, seconds: float) -> dict:
    sid, order_id = request.args.get("session"), request.args.get("order_id")
    ours = status == 200 and reply_body is not None and reply_body is g.get("kco_reply")
    return {"callback": callback, "session": _text(sid, 128),
            "order_id": _text(order_id, 255) if order_id else None, "status": status,
            "duration_ms": round(seconds * 1000, 3), "request": scrub(_request_body()),
            # A 200 body we built from the session's state holds nothing of the caller's that
            # the request's allow-list would not keep: its lines' names and the shipping
            # options are the shop's. Every other reply (errors echo input) is scrubbed.
            "reply": reply_body if ours else scrub(reply_body, reply=True)}


def _log_line(row: dict, seconds: float) -> None:
    status, reply = row["status"], row["reply"]
    log.info("kco %s session=%s order_id=%s -> %s in %.1f ms%s", row["callback"],
             _printable(row["session"]), _printable(row["order_id"]), status, seconds * 1000,
             f" reply={_compact(reply)}" if status >= 400 else "")
    if log.isEnabledFor(logging.DEBUG):
        log.debug("kco %s session=%s request=%s reply=%s", row["callback"],
                  _printable(row["session"]), _compact(row["request"]), _compact(reply))


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(value: str | None) -> str | None:
    """A URL parameter fit for one log line: control characters (a line break would start a
    forged line) become escapes. Refused ids are logged too, with their 400."""
    if value is None:
        return None
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)


def _text(value: str, limit: int) -> str:
    """A URL parameter as a text column takes it: PostgreSQL refuses NUL (0x00)."""
    return value.replace("\x00", "\ufffd")[:limit]


def _request_body() -> Any:
    if "strict_json" in g:  # already read by the view (web/body.py): the same JSON
        return g.strict_json
    try:
        raw = request.get_data(cache=True)
    except HTTPException as exc:  # 413: the body is over the limit and was never read
        return {"_omitted": f"body not read ({exc.code} {exc.name})"}
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if too_deep(exc):  # not parsed again by the standard library, a thousand frames deep
            return {"_omitted": f"{len(raw)} bytes that are not JSON"}
    try:  # NaN and Infinity are not JSON (RFC 8259), and PostgreSQL's json type refuses them
        return json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {"_omitted": f"{len(raw)} bytes that are not JSON"}


MAX_DEPTH = 64  # Klarna's bodies nest about 5 deep


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is not a finite number")
    return value


def _reply_body(response: Response) -> Any:
    if response.is_streamed:
        return None
    if response.status_code == 200 and "kco_reply" in g:
        return g.kco_reply
    if response.is_json:
        return response.get_json(silent=True)
    if response.status_code in (301, 302, 303, 307, 308):
        return {"location": response.headers.get("Location")}
    return None


def _compact(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
