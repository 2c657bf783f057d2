"""The sandbox's `html_snippet`: a stand-in for Klarna's iframe with the real JavaScript API.

The page that embeds it gets `window._klarnaCheckout(function (api) {...})` (kco-reference.md §9)
with `api.suspend(options)` (auto-resume after 10 s unless `{autoResume: {enabled: false}}`),
`api.resume()` and `api.on({event: handler, ...})` (one listener per event, a new one replaces
the old). Calls queued in `window._klarnaCheckout.q` before the snippet ran are replayed. `load`
(or `load_confirmation` for a completed order) fires once, asynchronously, so listeners
registered right after inserting the snippet see it. `window.__klarnaSandbox.emit(name, data)`
lets the sandbox's shopper simulation (shopper.py) fire the other events later.
"""
from __future__ import annotations

import html
import json
from collections.abc import Mapping

SCRIPT = r"""(function (w, d, ctx) {
  var root = d.getElementById(ctx.element);
  var listeners = {};
  var state = { suspended: false, timer: null };
  function show(busy) {
    if (!root) { return; }
    root.style.opacity = busy ? "0.5" : "";
    root.setAttribute("aria-busy", busy ? "true" : "false");
  }
  function emit(name, data) {
    var handler = listeners[name];
    if (typeof handler !== "function") { return false; }
    try { handler(data); } catch (err) { if (w.console) { w.console.error(err); } }
    return true;
  }
  var api = {
    suspend: function (options) {
      var auto = !(options && options.autoResume && options.autoResume.enabled === false);
      if (state.timer) { w.clearTimeout(state.timer); state.timer = null; }
      state.suspended = true;
      show(true);
      if (auto) { state.timer = w.setTimeout(api.resume, 10000); }
    },
    resume: function () {
      if (state.timer) { w.clearTimeout(state.timer); state.timer = null; }
      state.suspended = false;
      show(false);
    },
    on: function (handlers) {
      for (var name in handlers) {
        if (Object.prototype.hasOwnProperty.call(handlers, name)) { listeners[name] = handlers[name]; }
      }
    }
  };
  var queued = (w._klarnaCheckout && w._klarnaCheckout.q) || [];
  w._klarnaCheckout = function (callback) {
    if (typeof callback === "function") { callback(api); }
  };
  w._klarnaCheckout.q = [];
  w.__klarnaSandbox = {
    orderId: ctx.orderId,
    emit: emit,
    isSuspended: function () { return state.suspended; }
  };
  for (var i = 0; i < queued.length; i++) { w._klarnaCheckout.apply(w, queued[i]); }
  w.setTimeout(function () { emit(ctx.loadEvent, ctx.loadData); }, 0);
})(window, document, %s);"""


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
    element = f"klarna-sandbox-{order_id}"
    title = "Thank you for your purchase" if complete else "Klarna Checkout"
    context = {
        "element": element, "orderId": order_id,
        "loadEvent": "load_confirmation" if complete else "load",
        "loadData": {} if complete else {"customer": {"type": "person"}},
    }
    e = html.escape
    return (
        '<div id="klarna-checkout-container" style="overflow: hidden;">'
        f'<div id="{e(element)}" class="klarna-sandbox" data-order-id="{e(order_id)}" '
        f'data-status="{e(str(order.get("status", "")))}" data-sandbox-url="{e(base_url)}" '
        'style="border: 1px dashed #999; padding: 1em; font-family: sans-serif;">'
        f'<strong>{e(title)} (sandbox)</strong>'
        f'<p>Order <code>{e(order_id)}</code>: '
        f'{e(_money(order.get("order_amount"), order.get("purchase_currency")))}</p>'
        '</div>'
        '<script type="text/javascript">/* <![CDATA[ */'
        + SCRIPT % _script_json(context)
        + '/* ]]> */</script>'
        '<noscript>Please enable JavaScript.</noscript>'
        '</div>'
    )
