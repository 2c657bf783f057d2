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

A replay from the log (`flask kco replay --from-log`) needs nothing more: the callbacks decide
from the cart's lines, the amounts, the currency, locale and the addresses' country and region.
The retention command is `flask kco purge --older-than DAYS` (callbacks/cli/commands.py).
"""
from __future__ import annotations

import json
import logging
import math
import re
from time import perf_counter
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

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


def scrub(value: Any, *, reply: bool = False, allowed: dict | None = None) -> Any:
    """A copy of `value` keeping only what the allow-list above keeps; `reply=True` for our
    own replies, whose error words are ours, not the caller's."""
    allowed = ORDER if allowed is None else allowed
    if isinstance(value, dict):
        return {_key(key, i): _field(key, item, reply, allowed)
                for i, (key, item) in enumerate(value.items())}
    if isinstance(value, list):
        return [scrub(item, reply=reply, allowed=allowed) for item in value]
    return value if value in (None, "") or isinstance(value, bool) else SCRUBBED


def _field(key: Any, value: Any, reply: bool, allowed: dict) -> Any:
    if value in (None, "") or isinstance(value, bool):
        return value
    if reply and key in OUR_WORDS:
        return _no_token(value)
    if key == "_omitted" and allowed is ORDER and isinstance(value, str):
        return value  # our own note that the body was not JSON
    if allowed is ORDER and key in CONTAINERS and isinstance(value, (dict, list)):
        return scrub(value, reply=reply, allowed=CONTAINERS[key])
    rule = allowed.get(key) if isinstance(key, str) else None
    if rule is _NUMBER:
        return value if isinstance(value, (int, float)) else SCRUBBED
    if rule is not None and isinstance(value, str) and rule.fullmatch(value):
        return value
    return SCRUBBED


def _key(key: Any, index: int) -> Any:
    return key if key in KNOWN_KEYS else f"[scrubbed key {index}]"


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


def _start() -> None:
    g.kco_callback_started = perf_counter()


def _record(response: Response) -> Response:
    started = g.pop("kco_callback_started", None)
    seconds = perf_counter() - started if started is not None else 0.0
    callback = (request.endpoint or "kco.unknown").rsplit(".", 1)[-1]
    try:
        metrics = current_app.extensions.get("kco_metrics")
        if metrics is not None:
            metrics.observe_callback(callback, response.status_code, seconds)
        sid, token = request.args.get("session"), request.args.get("token")
        if not check_token(current_app.config["KCO_CALLBACK_SECRET"], CALLBACK, sid, token):
            return response  # a wrong token leaves no trace (docs/design.md §6.1)
        if response.status_code == 413:
            # An oversize body is refused with nothing recorded (issue 6): a log line only.
            log.warning("kco %s session=%s -> 413 (body over 1 MiB)", callback, sid)
            return response
        order_id = request.args.get("order_id")
        body, reply = scrub(_request_body()), scrub(_reply_body(response), reply=True)
        duration_ms = round(seconds * 1000, 3)
        current_app.extensions["kco"].store.log_callback(
            callback, _text(sid, 128), _text(order_id, 255) if order_id else None, response.status_code,
            duration_ms, body, reply)
        log.info("kco %s session=%s order_id=%s -> %s in %.1f ms%s", callback, _printable(sid),
                 _printable(order_id),
                 response.status_code, duration_ms,
                 f" reply={_compact(reply)}" if response.status_code >= 400 else "")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("kco %s session=%s request=%s reply=%s", callback, _printable(sid), _compact(body),
                      _compact(reply))
    except Exception:  # noqa: BLE001 - the log must never break Klarna's reply
        log.exception("could not record the %s callback", callback)
    return response


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
    try:
        raw = request.get_data(cache=True)
    except HTTPException as exc:  # 413: the body is over the limit and was never read
        return {"_omitted": f"body not read ({exc.code} {exc.name})"}
    if not raw:
        return None
    try:  # NaN and Infinity are not JSON (RFC 8259), and PostgreSQL's json type refuses them
        body = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {"_omitted": f"{len(raw)} bytes that are not JSON"}
    if _too_deep(body):  # scrub() recurses: junk nested this deep would lose the whole row
        return {"_omitted": f"{len(raw)} bytes of JSON nested deeper than {MAX_DEPTH}"}
    return body


MAX_DEPTH = 64  # Klarna's bodies nest about 5 deep


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is not a finite number")
    return value


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            stack.extend((item, depth + 1) for item in (node.values() if isinstance(node, dict) else node))
    return False


def _reply_body(response: Response) -> Any:
    if response.is_streamed:
        return None
    if response.is_json:
        return response.get_json(silent=True)
    if response.status_code in (301, 302, 303, 307, 308):
        return {"location": response.headers.get("Location")}
    return None


def _compact(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
