"""A webhook receiver to try kco-sync's webhooks with (docs/webhooks.md, README "Webhooks and
Order Management"): it verifies each message with the `standardwebhooks` package, prints one
line per message, and answers 204 (400 when the signature does not verify). Not part of the
service; a merchant's own receiver does the same three things — verify the raw body, drop a
webhook-id it has already handled, answer 2xx quickly.

    .venv/bin/python scripts/webhook_receiver.py --secret whsec_… [--port 9000]

Then subscribe `http://127.0.0.1:9000/hook` with `POST /api/webhook-endpoints` (development
allows http:// and loopback receivers; production does not).
"""
from __future__ import annotations

import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


def make_handler(hook: Webhook, out=sys.stdout):
    seen: set[str] = set()  # webhook-ids already handled: a real receiver keeps them in its database
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                message = hook.verify(raw, dict(self.headers))  # the raw bytes, not re-encoded JSON
            except WebhookVerificationError as exc:
                print(f"REFUSED {self.headers.get('webhook-id')}: {exc}", file=out, flush=True)
                self._answer(400)
                return
            message_id = self.headers["webhook-id"]
            with lock:
                again = message_id in seen
                seen.add(message_id)
            data = message["data"]
            print(f"{message_id} {message['type']} session={data['session']} version={data['version']} "
                  f"event={data['event_id']}{' (again: already handled)' if again else ''}",
                  file=out, flush=True)
            self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", required=True, help="the endpoint's whsec_… secret")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Webhook(args.secret)))
    print(f"receiving on http://{args.host}:{server.server_port}/ (any path); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
