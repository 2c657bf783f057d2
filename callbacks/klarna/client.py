"""Klarna's Checkout (v3) and Order Management REST APIs, as a small client (docs/design.md §1).

    client = KlarnaClient.from_config(app.config)       # KLARNA_API_URL, _USERNAME, _PASSWORD
    order = client.create_order({...})                  # POST, then GET the Location URL
    order = client.read_order(order["order_id"])
    order = client.update_order(order["order_id"], {"order_lines": [...], ...})
    merchant_order = client.read_merchant_order(order_id)   # Order Management
    client.acknowledge_order(order_id)                      # 204; stops Klarna's pushes

Every failure is one exception type, `KlarnaError(status, error_code, error_messages,
correlation_id)`: Klarna's error body when there is one, the HTTP status name as the code when
there is not (401s may come without `error_code`), and `status=None` with `error_code`
"TIMEOUT" or "NETWORK_ERROR" when no answer arrived. That lets callers apply Klarna's rule "on a
4xx, a 5xx or any other error, create a new order" (docs/klarna.md §6) with one `except`.

Retries (urllib3 `Retry` through an `HTTPAdapter`, exponential backoff) happen only where a
repeat cannot do harm: GETs, and POSTs carrying a `Klarna-Idempotency-Key` header (acknowledge
always sends one; create and update when the caller passes `idempotency_key`). They are retried
on connection failures and on 502/503/504 — not on a read timeout, where the first attempt may
still be running and the caller's time is already spent. A create without an idempotency key is
never retried at all: a duplicate order is worse than an error.

No Flask here: the client is used from views, the CLI and scripts alike.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

# The base URL is KLARNA_API_URL, as given: Klarna's regions and playgrounds are listed in
# docs/klarna.md §6. Klarna wants HTTPS; the default KLARNA_API_URL is the sandbox.

CLIENT_VERSION = "1.0"
USER_AGENT = f"kco-sync/{CLIENT_VERSION} (Klarna Checkout v3 client) python-requests/{requests.__version__}"
DEFAULT_TIMEOUT = (3.05, 10.0)  # (connect, read) seconds
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.25           # seconds; 0, 0.5, 1.0, … between attempts (urllib3's schedule)
RETRY_STATUSES = frozenset({502, 503, 504})
IDEMPOTENCY_HEADER = "Klarna-Idempotency-Key"

OnCall = Callable[[str, "int | None", float], None]


class KlarnaError(Exception):
    """A failed Klarna call. `status` is the HTTP status, or None when no answer arrived."""

    def __init__(self, status: int | None, error_code: str | None,
                 error_messages: Iterable[str] = (), correlation_id: str | None = None, *,
                 operation: str | None = None):
        self.status = status
        self.error_code = error_code
        self.error_messages = [str(m) for m in error_messages]
        self.correlation_id = correlation_id
        self.operation = operation
        super().__init__(status, error_code, self.error_messages, correlation_id)

    @property
    def is_network_error(self) -> bool:
        """True when Klarna never answered (timeout, refused, reset): the call may or may not
        have taken effect."""
        return self.status is None

    def __str__(self) -> str:
        what = f"Klarna {self.operation}" if self.operation else "Klarna call"
        status = "no response" if self.status is None else str(self.status)
        text = f"{what} failed: {status} {self.error_code or ''}".rstrip()
        if self.error_messages:
            text += ": " + "; ".join(self.error_messages)
        if self.correlation_id:
            text += f" (correlation_id {self.correlation_id})"
        return text

    def __repr__(self) -> str:
        return (f"KlarnaError({self.status!r}, {self.error_code!r}, {self.error_messages!r}, "
                f"{self.correlation_id!r})")


def _retry_policy(retries: int, backoff: float) -> Retry:
    settings: dict[str, Any] = dict(
        total=retries, connect=retries, status=retries,
        read=False,                   # a read timeout is not retried (see the module docstring)
        other=0, redirect=0, raise_on_redirect=False,
        allowed_methods=frozenset({"GET", "POST"}),  # POSTs reach it only when keyed, see _Adapter
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff, backoff_max=4.0,
        raise_on_status=False,        # hand back the last 5xx so Klarna's error body is read
        respect_retry_after_header=True,
    )
    try:
        return Retry(**settings, retry_after_max=5)  # a Retry-After beyond 5 s is cut to 5 s
    except TypeError:  # urllib3 before retry_after_max: honour Retry-After as sent
        return Retry(**settings)


NO_RETRY = Retry(total=0, read=False, redirect=0, raise_on_redirect=False, raise_on_status=False)


class _Adapter(HTTPAdapter):
    """An HTTPAdapter whose retry policy is chosen per request: the full policy for GETs and
    keyed POSTs, none for anything else. `HTTPAdapter.send` reads `self.max_retries` once, so a
    thread-local override keeps one shared adapter safe under concurrent calls."""

    def __init__(self, retry: Retry, **kw):
        self._local = threading.local()
        super().__init__(max_retries=retry, **kw)

    @property
    def max_retries(self) -> Retry:
        override = getattr(getattr(self, "_local", None), "retry", None)
        return override if override is not None else self._default_retry

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        self._default_retry = value

    def send(self, request, *args, **kwargs):
        repeatable = request.method in ("GET", "HEAD") or IDEMPOTENCY_HEADER in request.headers
        self._local.retry = None if repeatable else NO_RETRY
        try:
            return super().send(request, *args, **kwargs)
        finally:
            self._local.retry = None


def _timeout(value: Any) -> tuple[float, float]:
    """(connect, read) from a tuple, one number for both, or a string "3.05,10" / "10"."""
    if isinstance(value, str):
        value = [float(p) for p in value.replace(" ", "").split(",") if p]
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return DEFAULT_TIMEOUT
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    connect, read = value if len(value) == 2 else (value[0], value[0])
    return (float(connect), float(read))


def _setting(config: Any, name: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


class KlarnaClient:
    """One `requests.Session` (connection pool, auth, headers) per client; safe to share
    between threads. Close it with `close()` or use it as a context manager."""

    def __init__(self, base_url: str, username: str, password: str, *,
                 timeout: Any = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF, on_call: OnCall | None = None,
                 user_agent: str = USER_AGENT):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"Klarna base URL must be http(s)://host[:port], got {base_url!r}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            log.warning("Klarna API at %s over plain http: credentials travel unencrypted", base_url)
        self.base_url = base_url.rstrip("/")
        self.timeout = _timeout(timeout)
        self.on_call = on_call
        self.session = requests.Session()
        self.session.auth = (username, password)
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
        adapter = _Adapter(_retry_policy(retries, backoff))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    @classmethod
    def from_config(cls, config: Any, **kw) -> KlarnaClient:
        """From a `config.Config` or a mapping such as Flask's `app.config`. Optional keys:
        KLARNA_TIMEOUT ("3.05,10"), KLARNA_RETRIES."""
        kw.setdefault("timeout", _setting(config, "KLARNA_TIMEOUT"))
        retries = _setting(config, "KLARNA_RETRIES")
        if retries is not None:
            kw.setdefault("retries", int(retries))
        return cls(_setting(config, "KLARNA_API_URL"), _setting(config, "KLARNA_USERNAME"),
                   _setting(config, "KLARNA_PASSWORD"), **kw)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> KlarnaClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- Checkout API -------------------------------------------------------------------------

    def create_order(self, order: Mapping, *, idempotency_key: str | None = None) -> dict:
        """POST /checkout/v3/orders → 201; then read the order back from the `Location` header
        (never built from the id, as Klarna asks). Without `idempotency_key` it is sent once."""
        resp = self._call("create_order", "POST", f"{self.base_url}/checkout/v3/orders",
                          json_body=order, idempotency_key=idempotency_key, expect=(201, 200))
        location = resp.headers.get("Location")
        if not location:
            raise KlarnaError(resp.status_code, "BAD_RESPONSE",
                              ["201 Created without a Location header"], operation="create_order")
        location = urljoin(resp.url, location)
        if not self._same_origin(location):
            raise KlarnaError(resp.status_code, "BAD_RESPONSE",
                              [f"Location {location} is not under {self.base_url}; not followed"],
                              operation="create_order")
        created = _json_or_none(resp)
        try:
            return self._json(self._call("read_order", "GET", location, expect=(200,)), "read_order")
        except KlarnaError as exc:
            if isinstance(created, dict) and created.get("order_id"):
                # The order exists; creating another because the read-back failed would orphan it.
                log.warning("order %s created but reading it back failed (%s); using the 201 body",
                            created["order_id"], exc)
                return created
            raise

    def read_order(self, order_id: str) -> dict:
        """GET /checkout/v3/orders/{order_id} → 200; 404 once it expired or never existed."""
        resp = self._call("read_order", "GET", self._url("/checkout/v3/orders/", order_id),
                          expect=(200,))
        return self._json(resp, "read_order")

    def update_order(self, order_id: str, order: Mapping, *,
                     idempotency_key: str | None = None) -> dict:
        """POST /checkout/v3/orders/{order_id} → 200 with the whole order. Properties not sent
        stay as they were; 403 READ_ONLY_ORDER once the order is complete."""
        resp = self._call("update_order", "POST", self._url("/checkout/v3/orders/", order_id),
                          json_body=order, idempotency_key=idempotency_key, expect=(200,))
        return self._json(resp, "update_order")

    # --- Order Management API -----------------------------------------------------------------

    def read_merchant_order(self, order_id: str) -> dict:
        """GET /ordermanagement/v1/orders/{order_id} → 200; 404 NO_SUCH_ORDER until completed."""
        resp = self._call("read_merchant_order", "GET",
                          self._url("/ordermanagement/v1/orders/", order_id), expect=(200,))
        return self._json(resp, "read_merchant_order")

    def acknowledge_order(self, order_id: str, *, idempotency_key: str | None = None) -> None:
        """POST /ordermanagement/v1/orders/{order_id}/acknowledge → 204. Always keyed (a fresh
        UUID unless given), so it is retried like a GET."""
        self._call("acknowledge_order", "POST",
                   self._url("/ordermanagement/v1/orders/", order_id, "/acknowledge"),
                   idempotency_key=idempotency_key or str(uuid.uuid4()), expect=(204, 200))

    # --- plumbing -----------------------------------------------------------------------------

    def _url(self, prefix: str, order_id: str, suffix: str = "") -> str:
        if not isinstance(order_id, str) or not order_id:
            raise ValueError(f"order_id must be a non-empty string, got {order_id!r}")
        return f"{self.base_url}{prefix}{quote(order_id, safe='')}{suffix}"

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)

    def _call(self, operation: str, method: str, url: str, *, json_body: Any = None,
              idempotency_key: str | None = None, expect: tuple[int, ...]) -> requests.Response:
        headers = {}
        data = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(json_body, separators=(",", ":")).encode()
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        started = time.monotonic()
        status = None
        try:
            try:
                resp = self.session.request(method, url, data=data, headers=headers,
                                            timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                code = "TIMEOUT" if _timed_out(exc) else "NETWORK_ERROR"
                raise KlarnaError(None, code, [_reason(exc)], operation=operation) from exc
            status = resp.status_code
            if status not in expect:
                raise _error_from(resp, operation)
            return resp
        except KlarnaError as exc:
            # 4xx are answers the caller acts on (404 → new order); the rest smell of trouble.
            log.log(logging.INFO if exc.status and exc.status < 500 else logging.WARNING, "%s", exc)
            raise
        finally:
            self._report(operation, status, time.monotonic() - started)

    def _json(self, resp: requests.Response, operation: str) -> dict:
        body = _json_or_none(resp)
        if not isinstance(body, dict):
            raise KlarnaError(resp.status_code, "BAD_RESPONSE",
                              ["the response body is not a JSON object"], operation=operation)
        return body

    def _report(self, operation: str, status: int | None, seconds: float) -> None:
        if self.on_call is None:
            return
        try:
            self.on_call(operation, status, seconds)
        except Exception:  # metrics must never break a payment call
            log.exception("on_call hook failed")


def _json_or_none(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _timed_out(exc: Exception) -> bool:
    """requests reports some timeouts (those that used up urllib3's retries) as ConnectionError."""
    if isinstance(exc, requests.Timeout):
        return True
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)  # MaxRetryError.reason
    return (isinstance(reason, (ReadTimeoutError, ConnectTimeoutError))
            and not isinstance(reason, NewConnectionError))  # "refused" subclasses the timeout


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:297] + "..."


def _error_from(resp: requests.Response, operation: str) -> KlarnaError:
    """Klarna's `{error_code, error_messages, correlation_id}`, tolerating bodies that lack it
    (a 401 from the gateway, an HTML 502 from a proxy)."""
    body = _json_or_none(resp)
    body = body if isinstance(body, dict) else {}
    code = body.get("error_code")
    messages = body.get("error_messages")
    if isinstance(messages, str):
        messages = [messages]
    if not isinstance(messages, list):
        messages = [m for m in (body.get("error_message"), body.get("http_status_message"),
                                body.get("message")) if isinstance(m, str) and m]
    if not isinstance(code, str) or not code:
        try:
            code = HTTPStatus(resp.status_code).name
        except ValueError:
            code = f"HTTP_{resp.status_code}"
    if not messages and not body and resp.text:
        messages = [f"non-JSON body: {resp.text[:200]}"]
    if resp.status_code < 400:
        code, messages = "BAD_RESPONSE", [f"unexpected HTTP {resp.status_code}", *messages]
    correlation = body.get("correlation_id")
    return KlarnaError(resp.status_code, code, messages,
                       correlation if isinstance(correlation, str) else None, operation=operation)
