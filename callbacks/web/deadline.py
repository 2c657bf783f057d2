"""Slow senders: a request body arrives within KCO_BODY_TIMEOUT, or the request is dropped.

Why: gunicorn's gthread worker (the Procfile's) reads a request in the worker thread that then
runs the view, and it reads the body when the view asks for it. A client that sends its
headers at once and then its body a byte at a time holds that thread for as long as it
likes, and enough of them — one browser token and a few hundred connections — leave a worker
no thread for Klarna's callbacks, which Klarna times out (validation after 3 s, and it then
approves on silence). Three defences, all in this module:

1. A deadline. The body must be complete KCO_BODY_TIMEOUT seconds (10) after the request
   reached the app, per started 256 KiB of its Content-Length (a cart is a few KiB; a 1 MiB
   body, the limit, gets four times as long; a chunked body, whose length nobody knows yet,
   one step: neither browsers nor Klarna send those). At the deadline one thread per process
   (Reaper) shuts the read side of the connection, which wakes the read blocked on it, and
   the request is answered 408 (our error body; Klarna's on the callbacks Klarna shows the
   shopper an error_text for), then the connection is closed.
2. A budget of waiting threads. Whoever is not Klarna (the callback token) or the merchant's
   back end (the API key) takes a place before the first byte of its body is read: at most
   SESSION_WAITS (4) per session per process for a browser token, 429 beyond; and, for
   every such sender together, at most the worker's threads less the reserve the long-polls
   leave for Klarna (docs/long-poll.md), counted together with the waiting long-polls, 503
   beyond. Klarna's and the API key's bodies are bounded by the deadline alone. So with one
   browser token and 300 slow bodies against 2 × 128 threads, at most 8 of them wait, and
   the others are answered at once.
3. A body nobody read (a 401, a 429, a refused place) is not drained. gunicorn would read
   it in the thread for up to 5 s before the next request on the connection, and then, on
   closing, linger for up to 2 s more reading it in its main loop — the loop that accepts
   every new connection. What has already arrived is read without waiting (so a refused
   browser keeps its kept-alive connection); otherwise the connection's read side is shut
   and gunicorn is told the body failed, so it closes the connection once the reply is out.

What this does not do, a buffering proxy in front does (README: Production): it reads whole
bodies before gunicorn sees them, and whole replies from it, so neither slow senders nor slow
readers ever reach a worker thread.
"""
from __future__ import annotations

import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException

DEFAULT_SECONDS = 10
STEP = 256 * 1024  # bytes of Content-Length per KCO_BODY_TIMEOUT
SESSION_WAITS = 4  # bodies one session's browser token may be sending at once, per process
DRAIN_WITHOUT_WAITING = 64 * 1024  # an unread body this short is read if it is all here
BODY = "kco.body"  # environ key: this request's DeadlineInput
SENDER = "kco.body.sender"  # environ key: TRUSTED, or the browser token's session id
TRUSTED = object()


class SlowBody(HTTPException):
    """Raised from a read of the body. The storefront's handler (callbacks/storefront/api.py)
    renders `data` in our error body; Klarna's blueprint renders its own shape."""

    def __init__(self, code: int, message: str, errors: dict[str, list[str]],
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code: int = code
        self.message, self.errors = message, errors
        self.headers = {"Cache-Control": "no-store", **(headers or {})}
        self.data = {"message": message, "errors": errors, "headers": self.headers}


class BodyTimeout(SlowBody):
    def __init__(self, seconds: float):
        super().__init__(408, f"The request body did not arrive within {seconds:g} s; the connection "
                              "is closed. Send the whole body at once.",
                         {"_body": [f"Not complete after {seconds:g} s."]})


class Gate:
    """Places for threads waiting on a body (see the module's docstring, 2), per process."""

    def __init__(self, limit: Callable[[], int | None], long_polls: Callable[[], int],
                 per_session: int = SESSION_WAITS):
        self._limit: int | None | Callable[[], int | None] = limit
        self.long_polls = long_polls
        self.per_session = per_session
        self._lock = threading.Lock()
        self.waiting = 0
        self._sessions: Counter[str] = Counter()

    @property
    def limit(self) -> int | None:
        """Asked at the first wait: a gunicorn worker knows its thread count after the fork."""
        if callable(self._limit):
            self._limit = self._limit()
        return self._limit

    def enter(self, session: str | None) -> None:
        limit = self.limit
        with self._lock:
            if session is not None and self._sessions[session] >= self.per_session:
                raise SlowBody(429, f"This session already has {self.per_session} requests sending "
                                    "their bodies at once on this instance; retry when they are done.",
                               {"session": ["Too many bodies in flight."]}, {"Retry-After": "1"})
            if limit is not None and self.waiting + self.long_polls() >= limit:
                raise SlowBody(503, "This instance is waiting on too many request bodies and "
                                    "long-polls; retry shortly.",
                               {"_body": ["No thread free to wait for it."]}, {"Retry-After": "2"})
            self.waiting += 1
            if session is not None:
                self._sessions[session] += 1

    def leave(self, session: str | None) -> None:
        with self._lock:
            self.waiting -= 1
            if session is not None:
                self._sessions[session] -= 1
                if not self._sessions[session]:
                    del self._sessions[session]


class DeadlineInput:
    """`wsgi.input`, read against a deadline, with a place in the Gate while it is read."""

    def __init__(self, inner: Any, sock: socket.socket | None, seconds: float, length: int | None,
                 gate: Gate, reaper: Reaper, environ: dict[str, Any]):
        self.inner, self.sock, self.seconds, self.gate, self.reaper = inner, sock, seconds, gate, reaper
        self.deadline = time.monotonic() + seconds
        self.left = length  # bytes still to come, when the length is known
        self.environ = environ
        self.complete = False
        self.expired = False  # set by the Reaper when the deadline passed mid-read
        self.watch_id: int | None = None  # the Reaper's, while it watches this body
        self.failed: SlowBody | None = None
        self._decided = False  # whether this sender needs a place was decided (first read)
        self._held = False  # a place in the Gate is counted
        self._session: str | None = None

    # -- what Werkzeug and the views call ----------------------------------------------------
    def read(self, size: int | None = -1) -> bytes:
        return self._guarded(self.inner.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._guarded(self.inner.readline, size)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    # -- the deadline and the place ----------------------------------------------------------
    def _guarded(self, read: Callable[[int], bytes], size: int | None) -> bytes:
        if self.failed is not None:
            raise self.failed
        if self.complete or size == 0:
            return b""
        if not self._decided:
            self._take_place()
            if self.sock is not None:
                self.reaper.watch(self)
        if self.expired or time.monotonic() >= self.deadline:
            raise self._timed_out()
        try:
            data = read(-1 if size is None else size)
        except SlowBody:
            raise
        except Exception:
            if self.expired:  # the reaper shut the socket under the read
                raise self._timed_out() from None
            self._give_place_back()
            raise
        if self.expired:  # what came before the reaper's shutdown is not the whole body
            raise self._timed_out()
        if self.left is not None:
            self.left -= len(data)
        if not data or self.left is not None and self.left <= 0:
            self.complete = True
            self._give_place_back()
        return data

    def _take_place(self) -> None:
        self._decided = True
        sender = self.environ.get(SENDER)
        if sender is TRUSTED:
            return
        self._session = sender if isinstance(sender, str) else None
        try:
            self.gate.enter(self._session)
        except SlowBody as exc:
            self.failed = exc  # refused before a byte was read: the body stays unread
            raise
        self._held = True

    def _give_place_back(self) -> None:
        if self._held:
            self._held = False
            self.gate.leave(self._session)

    def _timed_out(self) -> SlowBody:
        self.failed = BodyTimeout(self.seconds)
        self._give_place_back()
        self.abandon()
        return self.failed

    def expire(self) -> None:
        """The Reaper, at the deadline: wake a read blocked on the socket (it returns what it
        has, or nothing), and make every later read a 408."""
        if not self.complete:
            self.expired = True
            self._shut()

    def _timeout(self, seconds: float | None) -> float | None:
        if self.sock is None:
            return None
        try:
            prior = self.sock.gettimeout()
            self.sock.settimeout(seconds)
            return prior
        except OSError:
            return None

    def _timeout_back(self, prior: float | None) -> None:
        if self.sock is not None:
            try:
                self.sock.settimeout(prior)
            except OSError:
                pass

    # -- at the end of the request -----------------------------------------------------------
    def finish(self) -> None:
        """The app has its reply. A body not read to its end is read now if it has all
        arrived and is short; else the connection is closed after the reply (docstring, 3)."""
        self._give_place_back()
        self.reaper.forget(self)
        if self.complete:
            return
        if self.failed is None and not self.expired and self.sock is not None and self.left is not None \
                and 0 < self.left <= DRAIN_WITHOUT_WAITING:
            prior = self._timeout(0.0)  # non-blocking: what has not arrived is not waited for
            try:
                while self.left > 0:
                    data = self.inner.read(self.left)
                    if not data:
                        break
                    self.left -= len(data)
                self.complete = self.left <= 0
            except Exception:  # noqa: BLE001 - would block, or the client went away: close
                pass
            finally:
                self._timeout_back(prior)
        if not self.complete:
            self.abandon()

    def abandon(self) -> None:
        if hasattr(self.inner, "failed"):
            self.inner.failed = True  # gunicorn: close the connection, do not drain (parser.finish_body)
        self._shut()

    def _shut(self) -> None:
        if self.sock is not None:
            try:
                # gunicorn's close then does not linger on it. socket.socket's own shutdown, on
                # the connection under TLS where gunicorn terminates it (--certfile): an
                # SSLSocket's shutdown also drops its TLS session, and the reply would go out
                # in plain text on the TLS connection.
                socket.socket.shutdown(self.sock, socket.SHUT_RD)
            except (OSError, TypeError):
                pass


class Reaper:
    """One thread per process that shuts the read side of every connection whose body is
    still arriving at its deadline. A socket timeout would not do: it bounds each recv, and a
    client sending a byte a second makes every recv return in time while gunicorn's read
    loops on for the rest of the body."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int]] = []  # (deadline, id) of the bodies watched
        self._bodies: dict[int, DeadlineInput] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def watch(self, body: DeadlineInput) -> None:
        with self._cond:
            body.watch_id = next(self._ids)
            self._bodies[body.watch_id] = body
            heapq.heappush(self._due, (body.deadline, body.watch_id))
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()  # started in the worker, after the fork
                self._thread = threading.Thread(target=self._run, name="kco-body-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()

    def forget(self, body: DeadlineInput) -> None:
        """The request is over: its socket may carry the next request by the deadline. (Its
        entry in the heap stays until then, two numbers, and is skipped.)"""
        if body.watch_id is not None:
            with self._cond:
                self._bodies.pop(body.watch_id, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    _, watch_id = heapq.heappop(self._due)
                    body = self._bodies.pop(watch_id, None)
                    if body is not None and not body.complete and body.failed is None:
                        body.expire()
                self._cond.wait(self._due[0][0] - now if self._due else None)


def body_length(environ: dict[str, Any]) -> tuple[bool, int | None]:
    """(has a body, its Content-Length if given)."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True, None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False, None  # Werkzeug refuses it; nothing will be read
    return length > 0, length


class Deadline:
    """The WSGI middleware: wraps `wsgi.input` of every request that has a body."""

    def __init__(self, wsgi_app: Callable[..., Any], seconds: float, gate: Gate):
        self.wsgi_app, self.seconds, self.gate, self.reaper = wsgi_app, seconds, gate, Reaper()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        has_body, length = body_length(environ)
        if not has_body:
            return self.wsgi_app(environ, start_response)
        steps = max(1, math.ceil(length / STEP)) if length else 1
        body = DeadlineInput(environ["wsgi.input"], environ.get("gunicorn.socket"),
                             self.seconds * steps, length, self.gate, self.reaper, environ)
        environ["wsgi.input"] = environ[BODY] = body
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            body.finish()


# -- what the blueprints say about the sender, before they read a body ----------------------
def trust() -> None:
    """Klarna (the callback token) or the merchant's back end (the API key): no place needed."""
    request.environ[SENDER] = TRUSTED


def from_session(sid: str) -> None:
    """A browser token of session `sid`: its place counts against the session's."""
    if request.environ.get(SENDER) is not TRUSTED:
        request.environ[SENDER] = sid


def unread() -> bool:
    """Does this request have a body that was not read to its end? (Then nothing may read it
    now: it would wait for the client, or find the connection closed.)"""
    body = request.environ.get(BODY)
    return isinstance(body, DeadlineInput) and not body.complete


def gate() -> Gate:
    found: Gate = current_app.extensions["kco_body_gate"]
    return found


def init_app(app: Flask) -> None:
    """After the storefront's init (the long-poll notifier, whose waiters share the limit)."""
    from callbacks.store.notify import max_waiters_from

    config = app.config
    notifier = app.extensions.get("kco_notify")
    the_gate = Gate(lambda: max_waiters_from(config),
                    (lambda: notifier.waiters) if notifier is not None else (lambda: 0))
    if notifier is not None:
        notifier.also_waiting = lambda: the_gate.waiting
    app.extensions["kco_body_gate"] = the_gate
    app.wsgi_app = Deadline(app.wsgi_app, float(config.get("KCO_BODY_TIMEOUT") or DEFAULT_SECONDS),  # type: ignore[method-assign]
                            the_gate)
