"""Callback and poll tokens (DESIGN.md §6.1).

Klarna signs nothing it sends, so every URL we hand Klarna carries a token bound to one
session: a forged callback must know `KCO_CALLBACK_SECRET`. The poll token is a different
message under the same key, so a shopper's browser can read its own session and can never pass
for Klarna.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

CALLBACK = "kco-callback:"
POLL = "kco-poll:"


def make_token(secret: str, purpose: str, sid: str) -> str:
    digest = hmac.new(secret.encode(), (purpose + sid).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def callback_token(secret: str, sid: str) -> str:
    return make_token(secret, CALLBACK, sid)


def poll_token(secret: str, sid: str) -> str:
    return make_token(secret, POLL, sid)


def check_token(secret: str, purpose: str, sid: str | None, token: str | None) -> bool:
    """Constant-time comparison; a missing session or token is simply wrong."""
    if not sid or not token:
        return False
    return hmac.compare_digest(make_token(secret, purpose, sid).encode(), token.encode("utf-8", "replace"))
