"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that records every request
(headers, body, time) and answers as the test says (a status, after a delay)."""
from __future__ import annotations

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import free_port


class Receiver:
    """`answer(n, body)` → (status, delay seconds) for the n-th request (0-based)."""

    def __init__(self, answer=None, port: int | None = None):
        self.answer = answer or (lambda n, body: (200, 0))
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    n = len(receiver.received)
                    receiver.received.append({"headers": dict(self.headers), "raw": raw,
                                              "body": json.loads(raw), "at": time.time(),
                                              "path": self.path})
                status, delay = receiver.answer(n, json.loads(raw))
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        with self.lock:
            return [r["body"] for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def until(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
