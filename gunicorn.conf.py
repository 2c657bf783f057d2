"""gunicorn reads this file from the working directory by itself (its default `--config`).

The worker class, workers and threads are in the Procfile; this file only tells each worker its
real thread count (the long-poll limit is derived from it), answers gunicorn's own 4xx pages
in our JSON error body (json_error_pages), limits its malloc arenas
(limit_malloc_arenas), freezes what the app loaded out of the garbage collector's way
(post_worker_init), keeps the Prometheus multiprocess directory right (docs/long-poll.md,
callbacks/web/metrics.py) and turns gunicorn's control socket off (below).
"""
import ctypes
import gc
import json
import os
from http import HTTPStatus
from pathlib import Path

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)

# gunicorn 25+ opens a control socket for `gunicornc` at one per-user path
# ($XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/gunicorn.ctl): the service and the sandbox
# that scripts/run.sh starts, or the servers a test run starts at once, would take it from each
# other. Off unless GUNICORN_CONTROL_SOCKET names a path for this server alone.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True


def on_starting(server):
    """Start with an empty PROMETHEUS_MULTIPROC_DIR: stale files would add old counts."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server, worker):
    """A dead worker's waiting long-polls no longer wait: drop its live gauge values."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    """Runs in the worker before it loads the app: callbacks/store/notify.py keeps
    max(4, threads/8) of these threads free of long-polls for Klarna's callbacks."""
    os.environ["GUNICORN_THREADS"] = str(worker.cfg.threads)
    limit_malloc_arenas(int(os.environ.get("MALLOC_ARENA_MAX") or 2))
    json_error_pages()


def json_error_pages() -> None:
    """gunicorn answers what it cannot parse itself — a request line past limit_request_line
    (414), headers past limit_request_fields / _field_size (431), a malformed request line or
    header (400) — with an HTML page, before the app sees anything. A caller of this service
    must never parse HTML (callbacks/web/errors.py), so those pages are our JSON error body.
    gunicorn has no setting or hook for its error page: every worker writes it through
    `gunicorn.util.write_error` (workers/base.py handle_error), which this replaces, in the
    worker, with the same status line and a JSON body."""
    from gunicorn import util

    def write_error(sock, status_int, reason, mesg):
        try:
            phrase = HTTPStatus(status_int).phrase
        except ValueError:
            phrase = reason
        body = json.dumps({"code": status_int, "status": phrase, "message": mesg or phrase,
                           "errors": {"_request": [mesg or phrase]}}).encode()
        head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
                "Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
                f"Cache-Control: no-store\r\nContent-Length: {len(body)}\r\n\r\n")
        util.write_nonblock(sock, head.encode("latin-1") + body)

    util.write_error = write_error


def post_worker_init(worker):
    """The app, the shop and the catalog cache live as long as the worker: freeze them out of
    the cyclic collector's reach. A full collection walked every one of them, and a 1000-line
    callback, which allocates enough to trigger one, paused for it: its slowest requests in
    bench/inprocess.py went from 45-50 ms to 19-27 ms CPU with the same median."""
    gc.collect()
    gc.freeze()


def limit_malloc_arenas(arenas: int) -> None:
    """glibc gives threads their own malloc arenas (up to 8 per core) and keeps what they
    freed: with 128 threads and 1000-line carts (~0.3 MB bodies, a few MB of objects per
    request) a worker grew to 140-220 MiB though its live objects were a fraction of that.
    Two arenas measured 15-25 % less RSS at the same CPU (BENCHMARKS.md); the GIL runs one
    thread at a time anyway, so more arenas buy little. Set before the worker's threads exist;
    MALLOC_ARENA_MAX in the environment overrides the 2."""
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):  # not glibc: nothing to limit
        pass


def ssl_context(config, default_ssl_context_factory):
    """Only where gunicorn terminates TLS itself (--certfile; a proxy in front usually does).
    A body past its deadline is cut by shutting the connection's read side
    (callbacks/web/deadline.py); OpenSSL 3 takes the end of input that the blocked read then
    sees for a fatal error and the 408 could not be written. With OP_IGNORE_UNEXPECTED_EOF it
    is an end of input like a close_notify, and the reply still goes out, encrypted."""
    import ssl

    context = default_ssl_context_factory()
    context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return context
