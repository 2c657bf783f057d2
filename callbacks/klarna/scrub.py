"""The callback log's scrubbing (docs/design.md §8): pure, no Flask, no database.

What is kept is decided by an ALLOW-LIST: only the fields a decision or a replay uses, each
only when its value looks like what Klarna sends there, at any depth below the containers that
hold them (order lines, addresses, shipping options):

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

A request's order lines are logged as compact rows (`scrub_request`): `{"cols": [...], "rows":
[[...], ...]}`, the allow-listed line fields the first line has (LINE_COLS, in that order),
each value judged as above, every other field of a line left out without being looked at (a 1000-line order has
~11,000 values: judging them all was a fifth of such a callback's CPU, BENCHMARKS.md). A line
whose allow-listed fields are not the first line's is a row of its own as an object of those
fields, so an absent field stays absent (a replay's verdict differs between absent and null).
`readable` turns such a body back into lines (support and replay read it); a row written
before (lines as objects, scrubbed field by field) is read as it is.
"""
from __future__ import annotations

import json
import re
from operator import itemgetter
from typing import Any

MAX_DEPTH = 64  # Klarna's bodies nest about 5 deep

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
CONTAINERS: dict[str, dict[str, Any]] = {
    "order_lines": LINE, "billing_address": ADDRESS, "shipping_address": ADDRESS,
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


LINE_COLS = ("type", "reference", *_LINE_AMOUNTS)  # a compact row's columns, in this order


def scrub_request(body: Any) -> Any:
    """scrub(body) for the callback log, with a body's top-level order lines as compact rows
    (see the module's docstring) when they are a list of objects, as Klarna sends them."""
    if type(body) is dict:
        lines = body.get("order_lines")
        if type(lines) is list and all(type(line) is dict for line in lines):
            out = scrub({**body, "order_lines": None})  # None is kept as it is, in its place
            out["order_lines"] = compact_lines(lines)
            return out
    return scrub(body)


def compact_lines(lines: list[dict]) -> dict:
    """Klarna's order lines as {"cols", "rows"}: only the allow-listed fields are read, and
    each value is kept exactly when _line would keep it (tests/test_calllog.py holds the two
    to the same verdicts), else reads "[scrubbed]". ~0.5 µs a line, against ~1.8 for _line."""
    cols = [key for key in LINE_COLS if lines and key in lines[0]]
    wanted, missing = frozenset(cols), frozenset(LINE_COLS).difference(cols)
    get, get_numbers = _values(cols), _values([key for key in cols if key in _LINE_NUMBERS])
    texts = [(i, key == "type") for i, key in enumerate(cols) if key in _LINE_TEXTS]
    words: dict[str, bool] = {}  # the type's verdicts: a few types repeat on every line
    rows: list[Any] = []
    for line in lines:
        keys = line.keys()
        if not (keys >= wanted and keys.isdisjoint(missing)):
            rows.append(_line_row(line))  # other allow-listed fields than the first line's
            continue
        row: Any = get(line)
        try:  # only numbers and true/false add up (all of them kept): the common case
            sum(get_numbers(line))
        except (TypeError, OverflowError):  # OverflowError: an int too large to add to a float
            row = [_number(value) if key in _LINE_NUMBERS else value for key, value in zip(cols, row)]
        for i, is_type in texts:
            value = row[i]
            if type(value) is str:
                if not value:
                    continue  # empty: kept
                if is_type:
                    kept = words.get(value)
                    if kept is None:
                        kept = words[value] = _WORD.fullmatch(value) is not None
                else:  # printable text has none of the characters _ID refuses
                    kept = len(value) <= 255 and (value.isprintable() or _ID.fullmatch(value) is not None)
            else:
                kept = value is None or value is True or value is False
            if not kept:
                row = list(row)
                row[i] = SCRUBBED
        rows.append(row)
    return {"cols": cols, "rows": rows}


def _values(keys: list[str]) -> Any:
    """A line's values for `keys`, as a tuple (a JSON array when stored)."""
    if len(keys) > 1:
        return itemgetter(*keys)
    return lambda line: tuple(line[key] for key in keys)


def _number(value: Any) -> Any:
    return value if (type(value) is int or type(value) is float or value is None or value is True
                     or value is False or value == "") else SCRUBBED


def _line_row(line: dict) -> dict:
    """A line whose allow-listed fields are not the first line's: a row of its own, as an
    object of those fields (an absent field stays absent), judged by _line itself (the rare
    path: no need for a third copy of its verdicts)."""
    return _line({key: line[key] for key in LINE_COLS if key in line})


def readable(body: Any) -> Any:
    """A logged request as support and replay read it: compact order lines back as a list of
    objects (the allow-listed fields each line had); any other body as it is."""
    if type(body) is dict:
        lines = body.get("order_lines")
        if type(lines) is dict and type(lines.get("cols")) is list and type(lines.get("rows")) is list:
            cols = lines["cols"]
            return {**body, "order_lines": [row if type(row) is dict else dict(zip(cols, row))
                                            for row in lines["rows"]]}
    return body


def _no_token(value: Any) -> Any:
    if isinstance(value, str) and "token=" in value.lower():
        return TOKEN_IN_URL.sub(r"\g<1>" + SCRUBBED, value)
    if isinstance(value, (dict, list)):
        return json.loads(TOKEN_IN_URL.sub(r"\g<1>" + SCRUBBED, json.dumps(value)))
    return value
