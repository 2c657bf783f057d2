"""Helpers for the tests that run the real gunicorn (tests/servers.py): find its workers, send
signed callbacks over HTTP, read the database afterwards."""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

from callbacks import create_app
from callbacks.store.database import callback_log, events, sessions
from callbacks.web.tokens import callback_token

from ..test_lifecycle import put_cart

SECRET = "reliability-secret"
API_KEY = "reliability-key"


def env_for(database_url: str, log_file: Path) -> dict:
    """The server's environment. Its log goes to `log_file`: tests/servers.py pipes stderr and
    reads it only if the start fails, so a busy server (one INFO line per callback) would fill
    the 64 KiB pipe and block every worker on its next log line."""
    return {"DATABASE_URL": database_url, "KCO_CALLBACK_SECRET": SECRET, "KCO_API_KEY": API_KEY,
            "KLARNA_API_URL": "http://127.0.0.1:9", "KCO_AUTO_MIGRATE": "1",
            "GUNICORN_CMD_ARGS": f"--capture-output --error-logfile {log_file}"}


def prepared(database_url: str, carts: dict[str, list[tuple[str, int]]]) -> None:
    """Migrate the database and give `carts` to their sessions, before gunicorn starts."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    for sid, items in carts.items():
        put_cart(app, sid, items)
    app.extensions["kco"].store.dispose()


def callback_url(base: str, callback: str, sid: str, order_id: str = "ord-rel") -> str:
    query = urlencode({"session": sid, "order_id": order_id, "token": callback_token(SECRET, sid)})
    return f"{base}/kco/{callback}?{query}"


def post_head(path: str, *, length: int | None = None, chunked: bool = False,
              version: str = "HTTP/1.1", extra: str = "", method: str = "POST") -> bytes:
    """A request's head as raw bytes, for sending its body separately (or never). `extra`:
    more header lines, each starting with CRLF."""
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if version == "HTTP/1.0":
        lines.append("Connection: close")
    return ("\r\n".join(lines) + extra + "\r\n\r\n").encode()


def callback_path(callback: str, sid: str, token: str | None = None) -> str:
    """A callback's path and query with the right token for `sid` unless `token` is given."""
    token = callback_token(SECRET, sid) if token is None else token
    return f"/kco/{callback}?" + urlencode({"session": sid, "order_id": "ord-1", "token": token})


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid …; comm may hold spaces and parentheses: split after the last ')'
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def gunicorn_pids(port: int) -> tuple[int, list[int]]:
    """(master, workers) of the gunicorn this test process started on `port`."""
    for pid in _children(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gunicorn" in b" ".join(cmdline) and f"127.0.0.1:{port}".encode() in cmdline:
            return pid, sorted(_children(pid))
    raise AssertionError(f"no gunicorn master on port {port} among this process's children")


def busiest_worker(port: int, workers: list[int]) -> tuple[int, int]:
    """(pid, open client connections) of the worker holding the most connections to `port`,
    from /proc/net/tcp: the one whose death cuts requests off."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "01":  # ESTABLISHED
                inodes.add(f"socket:[{inode}]")
    best = (workers[0], 0)
    for pid in workers:
        try:
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        held = sum(1 for fd in fds if fd in inodes)
        if held > best[1]:
            best = (pid, held)
    return best


def read_back(database_url: str) -> tuple[dict[str, dict], dict[str, list[dict]], int]:
    """(state by session, events by session in version order, callback-log rows)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            states = {r.sid: {**dict(r.state), "_row_version": r.version}
                      for r in conn.execute(sa.select(sessions.c.sid, sessions.c.state,
                                                      sessions.c.version))}
            by_session: dict[str, list[dict]] = {}
            for r in conn.execute(sa.select(events).order_by(events.c.id)):
                by_session.setdefault(r.session, []).append(
                    {"id": r.id, "type": r.type, "version": r.version, "data": r.data})
            logged = conn.execute(sa.select(sa.func.count()).select_from(callback_log)).scalar_one()
    finally:
        engine.dispose()
    for evs in by_session.values():
        evs.sort(key=lambda e: e["version"])
    return states, by_session, logged


def assert_whole(states: dict[str, dict], by_session: dict[str, list[dict]]) -> None:
    """No half-written session: versions 1..N without gaps or repeats, state version N, and
    no event for a session without a state (nor a state without its events)."""
    assert set(states) == set(by_session), set(states) ^ set(by_session)
    for sid, evs in by_session.items():
        versions = [e["version"] for e in evs]
        assert versions == list(range(1, len(evs) + 1)), (sid, versions)
        assert states[sid]["version"] == states[sid]["_row_version"] == len(evs), \
            (sid, states[sid]["version"], len(evs))
