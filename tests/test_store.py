"""The store's promises (docs/design.md §8): one transaction per change, no lost updates."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from callbacks.store.database import Store

from .payloads import goods_line, shipping_service_body

ROOT = Path(__file__).resolve().parents[1]


def _increment(store: Store, sid: str, times: int, errors: list):
    try:
        for _ in range(times):
            with store.session(sid) as tx:
                state = tx.state or {"n": 0}
                tx.save({**state, "n": state["n"] + 1}, "cart_updated",
                        {"n": state["n"] + 1, "note": "100 % 'quoted' \\ %s"})
    except Exception as exc:  # pragma: no cover - surfaced by the assertion below
        errors.append(exc)


def test_concurrent_writers_of_one_session_lose_no_update(database_url):
    store = Store(database_url)
    store.migrate()
    errors: list = []
    threads = [threading.Thread(target=_increment, args=(store, "s-race", 25, errors)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = store.get_state("s-race")
    assert state["n"] == 200 and state["version"] == 200
    versions = [e["version"] for e in store.events_after(0, sid="s-race", limit=1000)]
    assert versions == list(range(1, 201))  # every event carries the version it produced
    store.dispose()


def test_event_ids_are_visible_in_commit_order(database_url):
    """Many sessions written at once: a reader never sees id N and later a smaller id appear."""
    store = Store(database_url)
    store.migrate()
    stop = threading.Event()
    seen_out_of_order = []

    def reader():
        last = 0
        while not stop.is_set():
            batch = store.events_after(last, limit=1000)
            if batch:
                last = batch[-1]["id"]
        # After the writers stop, everything must be seen in order (on PostgreSQL once no older
        # transaction in the database holds the newest back: an auto-analyze, say).
        _until(lambda: len(store.events_after(0, limit=10_000)) >= 90, "every event to be readable")
        seen_out_of_order.extend(store.events_after(0, limit=10_000))
        seen_out_of_order.append(last)

    r = threading.Thread(target=reader)
    r.start()
    errors: list = []
    writers = [threading.Thread(target=_increment, args=(store, f"s-{i}", 15, errors)) for i in range(6)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    r.join()
    assert errors == []
    ids = [e["id"] for e in seen_out_of_order[:-1]]
    assert ids == sorted(ids) and len(ids) == 90 and len(set(ids)) == 90
    store.dispose()


SLOW_COMMIT = """
CREATE FUNCTION kco_test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.session LIKE 'slow-%' THEN PERFORM pg_sleep(0.02); END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER kco_test_slow_commit AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kco_test_slow_commit();
"""


def test_a_feed_reader_never_skips_an_event_that_commits_late(database_url):
    """The trap of a global feed without a global order (docs/event-ordering.md): an event
    whose id was drawn first but whose commit is slow must not be jumped over by a reader that
    already saw a larger id. On PostgreSQL a deferred trigger makes the commits of the `slow-`
    sessions take 20 ms after their events were inserted; the reader, polling as the
    long-poll listener does (`events_after(last)`), must still see every event exactly once."""
    store = Store(database_url)
    store.migrate()
    if store.is_postgres:
        with store.engine.begin() as conn:
            conn.connection.driver_connection.execute(SLOW_COMMIT)
    stop = threading.Event()
    seen: list[dict] = []
    sids = [f"slow-{i}" for i in range(2)] + [f"fast-{i}" for i in range(6)]
    expected = 12 * len(sids)

    def reader():
        last, deadline = 0, None
        while True:
            batch = store.events_after(last, limit=1000)
            seen.extend(batch)
            if batch:
                last = batch[-1]["id"]
            if stop.is_set():  # the writers are done: read on until it has them all, or give up
                deadline = deadline or time.monotonic() + 20
                if len(seen) >= expected or time.monotonic() > deadline:
                    return

    r = threading.Thread(target=reader)
    r.start()
    errors: list = []
    writers = [threading.Thread(target=_increment, args=(store, sid, 12, errors)) for sid in sids]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    r.join()
    assert errors == []
    everything = [e["id"] for e in store.events_after(0, limit=10_000)]
    assert len(everything) == expected
    assert [e["id"] for e in seen] == everything  # each once, in order, none skipped
    store.dispose()


STALL_COMMIT = """
CREATE FUNCTION kco_test_stall_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.session LIKE 'stall-%' THEN PERFORM pg_advisory_xact_lock(4242); END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER kco_test_stall_commit AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kco_test_stall_commit();
"""


@pytest.fixture
def pg_url():
    from .conftest import postgres_url, reset_postgres
    url = postgres_url()
    reset_postgres(url)
    return url


def _until(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _waiting_on(store: Store, key: int) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                    " AND objid = :k AND NOT granted"), {"k": key}).scalar_one()


def test_a_later_id_is_held_back_until_an_earlier_one_has_committed(pg_url):
    """The trap, step by step (docs/event-ordering.md): `stall-b` draws the smaller id, then
    its commit is held (a deferred trigger waits for a lock the test holds); `a` draws the
    larger id and commits. Until `stall-b` commits, a feed reader must get neither event: one
    that took `a`'s would move its cursor past `stall-b`'s for good. `a`'s transaction is the
    OLDER one (it wrote its session row first), so only the horizon it took over from
    `stall-b` holds it back, not its own xid."""
    store = Store(pg_url)
    store.migrate()
    with store.engine.begin() as conn:
        conn.connection.driver_connection.execute(STALL_COMMIT)
    gate = store.engine.connect()
    gate.execute(sa.select(sa.func.pg_advisory_lock(4242)))
    gate.commit()
    a_has_xid, a_may_append, errors = threading.Event(), threading.Event(), []

    def write(sid, before_commit=None, after_save=None):
        try:
            with store.session(sid) as tx:
                tx.save({"n": 1}, "cart_updated", {})
                if after_save:
                    after_save.set()
                if before_commit:
                    assert before_commit.wait(20)
        except Exception as exc:  # pragma: no cover - surfaced by the assertion below
            errors.append(exc)
    a = threading.Thread(target=write, args=("a", a_may_append, a_has_xid))
    b = threading.Thread(target=write, args=("stall-b",))
    try:
        a.start()
        assert a_has_xid.wait(20)
        b.start()
        _until(lambda: _waiting_on(store, 4242) == 1, "stall-b to draw its id and wait in its commit")
        a_may_append.set()
        a.join(20)
        assert errors == []
        assert store.events_after(0) == [] and store.last_event_id() == 0
    finally:
        a_may_append.set()
        gate.execute(sa.select(sa.func.pg_advisory_unlock(4242)))
        gate.close()
        a.join(20)
        b.join(20)
    assert errors == []
    # Other transactions on the server may hold the feed back a moment longer.
    _until(lambda: len(store.events_after(0)) == 2, "both events to be readable")
    events = store.events_after(0)
    assert [e["session"] for e in events] == ["stall-b", "a"]
    assert events[0]["id"] < events[1]["id"] and store.last_event_id() == events[1]["id"]
    store.dispose()


def test_an_open_transaction_in_another_database_does_not_hold_the_feed_back(pg_url):
    """Another application on the same server (here: another database) leaves a write
    transaction open; our feed must not wait for it, as it must for one in our database."""
    from .conftest import PG_DATABASE, PG_SERVER
    store = Store(pg_url)
    store.migrate()
    other_name = f"{PG_DATABASE}_other"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                            {"d": other_name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{other_name}"'))
    admin.dispose()
    elsewhere = sa.create_engine(f"{PG_SERVER}/{other_name}")
    ours = store.engine.connect()
    try:
        with elsewhere.connect() as foreign:
            foreign.execute(sa.text("SELECT pg_current_xact_id()"))  # open, with an xid
            with store.session("s-1") as tx:
                tx.save({"n": 1}, "cart_updated", {})
            event_id = tx.events[-1]["id"]
            _until(lambda: store.last_event_id() == event_id, "the event to be readable")
            ours.execute(sa.text("SELECT pg_current_xact_id()"))  # now one in our database
            with store.session("s-1") as tx:
                tx.save({"n": 2}, "cart_updated", {})
            assert [e["id"] for e in store.events_after(0)] == [event_id]
            foreign.rollback()
        ours.rollback()
        _until(lambda: len(store.events_after(0)) == 2, "the second event to be readable")
    finally:
        ours.close()
        elsewhere.dispose()
        store.dispose()


def test_a_failed_decision_rolls_back_the_whole_change(database_url):
    store = Store(database_url)
    store.migrate()
    with pytest.raises(RuntimeError):
        with store.session("s-rb") as tx:
            tx.save({"n": 1}, "cart_updated", {})
            raise RuntimeError("decided to refuse after writing")
    assert store.get_state("s-rb") is None and store.events_after(0) == []
    store.dispose()


def test_concurrent_callbacks_through_the_app_keep_versions_gapless(app, shop, store):
    """Two shoppers' worth of address changes for one session, in parallel threads."""
    from .conftest import kco_url
    countries = ["SE", "FI", "DE", "NL"]
    results: list = []

    def post(country):
        client = app.test_client()
        lines = [goods_line(shop, "TSHIRT-BLUE-M", 1, "SEK", 2500)]
        for _ in range(5):
            body = shipping_service_body(lines, country=country)
            results.append(client.post(kco_url(app, "address_update", "s-par"), json=body).status_code)

    threads = [threading.Thread(target=post, args=(c,)) for c in countries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 20
    events = store.events_after(0, sid="s-par", limit=1000)
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    assert store.get_state("s-par")["version"] == len(events)


def test_migrate_command_brings_a_new_database_up_to_date(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    env = {"DATABASE_URL": url, "KCO_AUTO_MIGRATE": "0", "PATH": "/usr/bin:/bin",
           "KCO_CALLBACK_SECRET": "x", "KCO_API_KEY": "y"}
    cmd = [sys.executable, "-m", "flask", "--app", "wsgi", "kco", "migrate"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "migrated from an empty schema to revision 0007" in out.stderr  # its one line
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert {"sessions", "events", "callback_log", "alembic_version", "products", "catalog_state",
            "activity"} <= tables
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "is at revision 0007: nothing to migrate" in again.stdout


def test_head_is_alembics_newest_revision():
    """migrate.HEAD lets a worker skip Alembic when the schema is current: a new migration
    must move it, or workers would never run that migration."""
    from alembic.script import ScriptDirectory

    from callbacks.store import migrate
    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == migrate.HEAD


def test_a_worker_on_a_current_database_does_not_load_alembic(database_url):
    """Alembic (with Mako and Pygments) is ~11 MiB of a worker's memory: only a process that
    migrates loads it."""
    Store(database_url).migrate()
    code = ("import sys; from callbacks import create_app; "
            "create_app({'TESTING': True, 'DATABASE_URL': sys.argv[1]}); "
            "print(sorted(m for m in ('alembic', 'mako', 'pygments') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, database_url], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_events_written_before_revision_0004_stay_in_the_feed(database_url):
    """A database upgraded from 0003 with events in it: those events (no horizon) are still
    handed out, in id order before the new ones, and a feed reader can start after them."""
    from callbacks.store.migrate import upgrade
    store = Store(database_url)
    assert upgrade(store.engine, "0003") == (None, "0003")
    with store.engine.begin() as conn:  # as the old code wrote them
        for version in (1, 2):
            conn.execute(sa.text("INSERT INTO events (session, type, version, at, data)"
                                 " VALUES ('s-old', 'cart_updated', :v, :at, '{}')"),
                         {"v": version, "at": datetime(2026, 11, 1)})
    assert store.migrate() == "0007"
    with store.session("s-new") as tx:
        tx.save({"n": 1}, "cart_updated", {"n": 1})
    _until(lambda: len(store.events_after(0)) == 3, "every event to be readable")
    feed = store.events_after(0)
    assert [(e["session"], e["version"]) for e in feed] == [("s-old", 1), ("s-old", 2), ("s-new", 1)]
    assert store.events_after(feed[1]["id"]) == feed[2:]
    assert store.last_event_id() == feed[2]["id"]
    store.dispose()


def test_the_hot_paths_rows_read_back_through_sqlalchemy_as_sqlalchemys_own(database_url):
    """store/hotpath.py writes the session, its event and the log row on the DB-API connection:
    SQLAlchemy Core (the support console, the feeds, the migrations' successors) must read them
    as it reads rows it wrote itself, and the hot path must read what SQLAlchemy wrote."""
    from callbacks.store.tables import callback_log, events, sessions

    store = Store(database_url)
    store.migrate()
    state = {"cart": {"items": [{"reference": "ÅÄÖ-1", "quantity": 2}]}, "note": "100 % 'q' \\ %s",
             "klarna": {"order_id": "ord-1", "account": "acct"}}
    with store.session("s-hot") as tx:
        tx.save(state, "cart_updated", {"n": 1, "none": None})
        store.log_callback("address_update", "s-hot", "ord-1", 200, 1.5, None, {"ok": True},
                           conn=tx.conn)
    with store.engine.connect() as conn:
        session = conn.execute(sa.select(sessions).where(sessions.c.sid == "s-hot")).one()
        event = conn.execute(sa.select(events).where(events.c.session == "s-hot")).one()
        logged = conn.execute(sa.select(callback_log).where(callback_log.c.session == "s-hot")).one()
        request_is_sql_null = conn.execute(sa.select(callback_log.c.request.is_(None))
                                           .where(callback_log.c.id == logged.id)).scalar()
    assert session.version == 1 and session.state["cart"] == state["cart"]
    assert session.state["note"] == state["note"] and session.state["session"] == "s-hot"
    assert (session.klarna_order_id, session.klarna_account) == ("ord-1", "acct")
    assert isinstance(session.created_at, datetime) and session.created_at == session.updated_at
    assert session.state["updated_at"].startswith(session.updated_at.isoformat()[:23])
    assert (event.type, event.version, event.data) == ("cart_updated", 1, {"n": 1, "none": None})
    assert isinstance(event.at, datetime) and event.at == session.updated_at
    assert (logged.callback, logged.order_id, logged.status, logged.duration_ms) == (
        "address_update", "ord-1", 200, 1.5)
    assert logged.request is None and logged.reply == {"ok": True} and not request_is_sql_null
    assert isinstance(logged.at, datetime)
    assert store.get_state("s-hot") == session.state
    # …and the other way: a row SQLAlchemy wrote is the hot path's to read and update.
    with store.engine.begin() as conn:
        conn.execute(sessions.update().where(sessions.c.sid == "s-hot")
                     .values(state={**session.state, "note": "by SQLAlchemy"}))
    with store.session("s-hot") as tx:
        assert tx.state["note"] == "by SQLAlchemy" and tx.version == 1
        tx.save(tx.state, "cart_updated", {"n": 2})
    assert store.get_state("s-hot")["version"] == 2
    assert [e["version"] for e in store.events_after(0, sid="s-hot")] == [1, 2]
    store.dispose()
