"""The callback log (DESIGN.md §8): every Klarna callback, scrubbed, for support and replay.

One `after_request` hook on the `kco` blueprint (`install(bp)`, plus a `before_request` that
only notes the start time) records, for every callback whose token is right, whatever the
view answered — 200, 303, 400, 413, 500 alike: the scrubbed request body, the reply, the
status and how long we took. A request with a missing or wrong token is NOT recorded (§6.1:
"nothing recorded"), neither in the table nor in the log; it is only counted in the metrics.
The same hook feeds the Prometheus counters and histogram and writes one Python log line.

What is scrubbed, by key, at any depth (the value becomes "[scrubbed]"; absent or empty values
are kept as they are, so support can still see that a field was empty):

* names, e-mail, phone, street address, care-of, title, date of birth, gender, national and
  organisation identity numbers, VAT id, organisation name, attention;
* `postal_code` and `city` as well: no decision here uses them (taxes and markets follow the
  country and, for US sales tax, the region), and a full postcode (GB, NL, CA) narrows an
  address to a handful of households;
* `attachment` (Klarna's extra merchant data: customer account info, e-mails, histories) and
  `html_snippet` (large and of no use in a log);
* the `token=` value in any URL inside a string (Read Order bodies echo our `merchant_urls`):
  a token would let whoever reads the log forge callbacks for that session.

`country` and `region` are kept: they are what every decision (market, tax country, US sales
tax by state) is made from, so a replay needs them, and a country or a US state identifies
nobody. The retention command is `flask kco purge --older-than DAYS` (callbacks/cli.py).
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
SCRUB_KEYS = frozenset({
    "given_name", "family_name", "first_name", "last_name", "full_name",
    "email", "phone", "phone_number", "mobile_phone", "mobile_phone_number",
    "street_address", "street_address2", "street_name", "street_number", "house_extension",
    "care_of", "title", "date_of_birth", "gender",
    "national_identification_number", "organization_registration_id", "vat_id",
    "organization_name", "attention",
    "postal_code", "city",
    "attachment", "html_snippet",
})
TOKEN_IN_URL = re.compile(r"([?&]token=)[^&#\s\"']*", re.IGNORECASE)


def scrub(value: Any) -> Any:
    """A copy of `value` with personal data replaced, recursively, by key (see above)."""
    if isinstance(value, dict):
        return {key: (SCRUBBED if isinstance(key, str) and key.lower() in SCRUB_KEYS
                      and item not in (None, "") else scrub(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, str) and "token=" in value.lower():
        return TOKEN_IN_URL.sub(r"\g<1>" + SCRUBBED, value)
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
            return response  # a wrong token leaves no trace (DESIGN.md §6.1)
        if response.status_code == 413:
            # An oversize body is refused with nothing recorded (issue 6): a log line only.
            log.warning("kco %s session=%s -> 413 (body over 1 MiB)", callback, sid)
            return response
        order_id = request.args.get("order_id")
        body, reply = scrub(_request_body()), scrub(_reply_body(response))
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
