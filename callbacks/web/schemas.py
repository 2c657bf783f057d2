"""What Klarna's callbacks and the storefront API both accept: session ids, country, currency
and locale codes, strict integers. Each side's schemas live with its views:
callbacks/klarna/schemas.py (EXCLUDE: Klarna keeps adding fields) and
callbacks/storefront/schemas.py (RAISE: a storefront typo is an error, not an ignored value).
"""
from __future__ import annotations

import re
from typing import Any

from marshmallow import fields, validate

SESSION_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}\Z")  # \Z: "$" would accept a trailing newline
COUNTRY = validate.Regexp(r"^[A-Za-z]{2}\Z", error="Not an ISO 3166 alpha-2 country code.")
CURRENCY = validate.Regexp(r"^[A-Za-z]{3}\Z", error="Not an ISO 4217 currency code.")
LOCALE = validate.Regexp(r"^[A-Za-z]{2}(?:-[A-Za-z]{2})*\Z", error="Not an RFC 1766 locale.")
NOT_AN_OBJECT = {"type": "Must be a JSON object."}  # marshmallow's "Invalid input type."


def Int(**kw: Any) -> fields.Integer:  # noqa: N802 - reads like a field class
    """Integers only: no floats, strings or booleans, as in Klarna's int64 fields."""
    return fields.Integer(strict=True, **kw)
