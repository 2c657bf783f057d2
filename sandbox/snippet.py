"""The sandbox's `html_snippet`: like Klarna's, an iframe plus the JavaScript API around it.

The iframe is the sandbox's checkout page (frame.py), or its confirmation page once the order is
complete. The page that embeds the snippet gets `window._klarnaCheckout(function (api) {...})`
(docs/klarna.md §9): `api.suspend(options)` (auto-resume after 10 s unless
`{autoResume: {enabled: false}}`; a page may set `window._klarnaCheckoutAutoResumeMs` so a
test need not wait 10 s), `api.resume()` and `api.on({event: handler, ...})` (one listener per
event, a new one replaces the old). Calls queued in `window._klarnaCheckout.q` before the
snippet ran are replayed. The events come from the iframe (static/frame.js); the script
(static/klarna-checkout.js) accepts them only from that iframe and the sandbox's origin, and
notes every suspend, resume and event in `window._klarnaCheckoutLog` for tests.
"""
from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

SCRIPT = (Path(__file__).parent / "static" / "klarna-checkout.js").read_text(encoding="utf-8")
FRAME_ID = "klarna-checkout-iframe"


def _script_json(value) -> str:
    """JSON that cannot close the <script> element or break out of it."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _money(amount, currency) -> str:
    if not isinstance(amount, int):
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) // 100}.{abs(amount) % 100:02d} {currency or ''}".strip()


def render(order: Mapping, base_url: str) -> str:
    """The snippet for a Checkout order body (`checkout_view`); a confirmation once complete."""
    order_id = str(order["order_id"])
    complete = order.get("status") == "checkout_complete"
    page = "confirmation" if complete else "frame"
    src = f"{base_url.rstrip('/')}/sandbox/checkout/{quote(order_id, safe='')}/{page}"
    parts = urlsplit(base_url)
    title = "Klarna Checkout confirmation" if complete else "Klarna Checkout"
    amount = _money(order.get("order_amount"), order.get("purchase_currency"))
    context = {"frame": FRAME_ID, "orderId": order_id,
               "origin": f"{parts.scheme}://{parts.netloc}" if parts.netloc else None}
    e = html.escape
    return (
        '<div id="klarna-checkout-container" style="overflow-x: hidden;">'
        f'<iframe id="{FRAME_ID}" name="{FRAME_ID}" src="{e(src)}" '
        f'title="{e(title)} (sandbox): order {e(order_id)}, {e(amount)}" '
        f'data-order-id="{e(order_id)}" data-status="{e(str(order.get("status", "")))}" '
        'scrolling="no" frameborder="0" '
        'style="height: 640px; width: 1px; min-width: 100%; border: 0; display: block;"></iframe>'
        '<script type="text/javascript">/* <![CDATA[ */'
        + SCRIPT.replace("__KCO_SANDBOX_CONTEXT__", _script_json(context))
        + '/* ]]> */</script>'
        '<noscript>Please enable JavaScript.</noscript>'
        '</div>'
    )
