"""orjson behind Flask's JSON provider and SQLAlchemy's JSON columns.

A 1000-line cart's state and reply are ~250 KB of JSON, written and read several times per
request; the standard library's encoder took ~2.4 ms per pass at that size (BENCHMARKS.md),
orjson a tenth of it. Output stays what Flask's default provider gives a client (sorted keys,
dates as HTTP dates through `default`); only non-ASCII text is sent as UTF-8 rather than
\\u-escaped, which any JSON parser reads the same.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

# Dates and datetimes go through `default` (Flask writes them as HTTP dates, not ISO).
OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """orjson, or the standard library for what orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(value, default=default, option=OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, default=default, sort_keys=True, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """orjson, or the standard library for what orjson refuses (NaN, Infinity, huge integers
    written by the standard library before this module existed)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class OrjsonProvider(DefaultJSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.get("separators") == (",", ":"):  # what response() asks for: orjson's own
            del kwargs["separators"]
        if kwargs:  # indent (debug), ensure_ascii, …: only the default provider does those
            return super().dumps(obj, **kwargs)
        return dumps(obj, default=self.default)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s) if not kwargs else super().loads(s, **kwargs)
