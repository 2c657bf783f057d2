"""The headers every reply carries, in one place: CSP with a per-request nonce, framing,
nosniff, Referrer-Policy, and no-store on what carries a token.

* Every reply: `X-Content-Type-Options: nosniff` (a JSON error echoing input is never read as
  HTML) and `Referrer-Policy: same-origin` (a page's URL, with its `?session=` or `?token=`,
  never leaves for another site; a stricter one a view set, like the console's, stays).
* HTML pages: a Content-Security-Policy without 'unsafe-inline' for scripts. Scripts come from
  this origin, from Klarna's hosts (docs/klarna.md §9), or carry the request's nonce —
  `csp_nonce` in templates (`<script nonce="{{ csp_nonce }}">`, or `csp_nonce()`), which
  kco-sync.js also gives the scripts of Klarna's snippet it re-creates. Frames: Klarna's hosts
  and KLARNA_API_URL's origin (the sandbox's checkout iframe). `frame-ancestors 'none'` (and
  X-Frame-Options: DENY for old browsers): no page of the service may be framed, the checkout
  page least of all (a framed checkout is a clickjacking target). A view that sets its own
  policy (the support console's, stricter) keeps it.
* `Cache-Control: no-store` on every reply that carries a browser token: the checkout load, the
  token endpoint and the demo shop's pages (each has its session's token in its config), so no
  shared or browser cache keeps a token.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request

# Klarna's hosts for a page that embeds its checkout (docs/klarna.md §9).
KLARNA_SCRIPTS = "https://x.klarnacdn.net https://js.klarna.com https://js.playground.klarna.com"
KLARNA_FRAMES = "https://*.klarna.com https://x.klarnacdn.net"
KLARNA_CONNECT = "https://*.klarna.com https://*.klarnaevt.com https://x.klarnacdn.net"
KLARNA_ASSETS = "https://x.klarnacdn.net"

TOKEN_ENDPOINTS = frozenset({"storefront.load_checkout", "storefront.new_browser_token"})
TOKEN_BLUEPRINTS = frozenset({"demoshop"})


def csp_nonce() -> str:
    """This request's nonce, made on first use."""
    nonce: str | None = g.get("kco_csp_nonce")
    if nonce is None:
        nonce = g.kco_csp_nonce = secrets.token_urlsafe(16)
    return nonce


class _TemplateNonce:
    """`{{ csp_nonce }}` and `{{ csp_nonce() }}` both print the nonce (URL-safe base64: no
    character needs escaping)."""

    def __call__(self) -> str:
        return csp_nonce()

    def __str__(self) -> str:
        return csp_nonce()

    __html__ = __str__


def origin(url: str | None) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def page_policy(nonce: str | None) -> str:
    frames = " ".join(filter(None, [KLARNA_FRAMES, origin(current_app.config.get("KLARNA_API_URL"))]))
    scripts = f"'self' {KLARNA_SCRIPTS}" + (f" 'nonce-{nonce}'" if nonce else "")
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        f"style-src 'self' 'unsafe-inline' {KLARNA_ASSETS}",  # the snippet's style attributes
        f"img-src 'self' data: {KLARNA_FRAMES}",
        f"font-src 'self' {KLARNA_ASSETS}",
        f"connect-src 'self' {KLARNA_CONNECT}",
        f"frame-src {frames}",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ])


def secure(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        if "Content-Security-Policy" not in headers:
            headers["Content-Security-Policy"] = page_policy(g.get("kco_csp_nonce"))
        headers.setdefault("X-Frame-Options", "DENY")
    if request.endpoint in TOKEN_ENDPOINTS or (
            request.blueprint in TOKEN_BLUEPRINTS and response.mimetype == "text/html"):
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csp_nonce"] = _TemplateNonce()
    app.after_request(secure)
