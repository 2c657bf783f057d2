"""Extra merchant data (EMD) for a session's Klarna order, as pure functions (docs/design.md §7.5).

Some merchant segments (travel, marketplaces, tickets, subscriptions, …) must send Klarna extra
merchant data with every order, or Klarna will not approve them for live traffic; it travels as
the order's `attachment`: `{content_type: "application/vnd.klarna.internal.emd-v2+json",
body: <a JSON object, serialised to a string>}` (docs/klarna.md §4.7). The merchant's back end
sets it with `PUT /api/sessions/{sid}/attachment`; kco-sync sends it on every create and update.

EMD is about people (passengers, account holders, addresses), so it is kept out of everything
that is read widely: it lives in a table of its own (`session_attachments`), not in the state
document, not in any event (`attachment_updated` names its content type and size only) and not
in the callback log (its scrubber turns an `attachment` into "[scrubbed]", and our replies to
Klarna never carry one). Setting it raises the session's version, so the open Klarna order is
updated under a new idempotency key and a checkout load that finds Klarna's copy without it
updates that too.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from callbacks.rules.checkout import Decision, OrderComplete, is_complete
from callbacks.rules.state import EventType

EMD_CONTENT_TYPE = "application/vnd.klarna.internal.emd-v2+json"
MAX_BODY_BYTES = 100_000  # 100 kB of UTF-8


def body_problem(body: str) -> str | None:
    """Why `body` cannot be an EMD body, or None: at most 100 kB, and a JSON object (Klarna:
    "an object containing any of the keys … serialised to JSON")."""
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        return f"Is {size} bytes; at most {MAX_BODY_BYTES} (100 kB)."
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        return f"Is not JSON ({exc.args[0].split(':')[0]})."
    if not isinstance(parsed, dict):
        return "Must be a JSON object, serialised to a string (e.g. \"{\\\"customer_account_info\\\": [...]}\")."
    return None


def digest(content_type: str, body: str) -> str:
    """What tells one attachment from another without keeping two copies of it."""
    return hashlib.sha256(f"{content_type}\n{body}".encode("utf-8", "surrogatepass")).hexdigest()


def attachment_set(state: Mapping[str, Any], sid: str, content_type: str, body: str,
                   old_digest: str | None) -> Decision:
    """The merchant's back end sets the session's extra merchant data. Refused once the order
    is complete (Klarna holds what was paid; OrderComplete); the same attachment again is no
    change (event_type None). The caller stores the body itself, beside the new version."""
    if is_complete(state):
        raise OrderComplete(sid)
    if digest(content_type, body) == old_digest:
        return Decision(dict(state), None, {})
    return Decision(dict(state), EventType.ATTACHMENT_UPDATED,
                    {"content_type": content_type,
                     "size": len(body.encode("utf-8", "surrogatepass")),
                     "replaced": old_digest is not None})
