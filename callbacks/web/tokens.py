"""Callback and browser tokens (docs/design.md §6.1).

Klarna signs nothing it sends, so every URL we hand Klarna carries a token bound to one
session: a forged callback must know `KCO_CALLBACK_SECRET`. The browser token (it replaced the
poll token, and is still returned as `poll_token`) is a different message under the same key, so
a shopper's browser can act on its own session and can never pass for Klarna. It carries its
expiry inside the signed message: a browser token outlives neither Klarna's 48-hour order life
nor a leak by more than that.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time

CALLBACK = "kco-callback:"
BROWSER = "kco-browser:"
BROWSER_TTL = 48 * 3600  # seconds: Klarna's checkout order lives 48 h after its last update
_BROWSER_SHAPE = re.compile(r"^([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


@functools.lru_cache(maxsize=4096)
def make_token(secret: str, purpose: str, sid: str) -> str:
    """The HMAC of purpose and session under `secret`. Remembered: a callback checks its token
    before the view and again in the log's hook, and its reply names its own URLs."""
    digest = hmac.new(secret.encode(), (purpose + sid).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def callback_token(secret: str, sid: str) -> str:
    return make_token(secret, CALLBACK, sid)


def browser_token(secret: str, sid: str, *, now: float | None = None,
                  ttl: int = BROWSER_TTL) -> str:
    """`<expiry, unix seconds>.<HMAC of purpose, expiry and session>`."""
    expires = int(now if now is not None else time.time()) + ttl
    return f"{expires}.{make_token(secret, f'{BROWSER}{expires}:', sid)}"


poll_token = browser_token  # the name the storefront API has used since the first release


def browser_token_expiry(token: str | None) -> int | None:
    match = _BROWSER_SHAPE.match(token or "")
    return int(match.group(1)) if match else None


def check_browser_token(secret: str, sid: str | None, token: str | None,
                        *, now: float | None = None) -> bool:
    """Right session, right key, not expired; constant-time on the signature."""
    match = _BROWSER_SHAPE.match(token or "")
    if not sid or not match:
        return False
    expires = int(match.group(1))
    expected = make_token(secret, f"{BROWSER}{expires}:", sid)
    signed = hmac.compare_digest(expected.encode(), match.group(2).encode())
    return signed and (now if now is not None else time.time()) < expires


def check_token(secret: str, purpose: str, sid: str | None, token: str | None) -> bool:
    """Constant-time comparison; a missing session or token is simply wrong."""
    if not sid or not token:
        return False
    return hmac.compare_digest(make_token(secret, purpose, sid).encode(), token.encode("utf-8", "replace"))
