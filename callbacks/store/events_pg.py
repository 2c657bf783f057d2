"""How PostgreSQL writers append events without a global commit order, and what readers may
hand out (docs/event-ordering.md has the argument in full).

The feed's promise: a reader that has seen event id N never later finds a smaller id
committed. Writers no longer commit one at a time, so a smaller id CAN commit after a larger
one; readers therefore stop short of any id that could still be overtaken:

* a writer draws its ids in `kco_append_events` (migration 0004) under a lock held only for
  that call, and stamps them with a horizon h = greatest(register, its own xid), raising the
  register to h. Every transaction that drew an id <= i thus has an xid <= horizon(i), and
  horizons never decrease as ids grow;
* a reader returns an event only if its horizon is below every transaction of this database
  that was still running at the reading statement's own snapshot. Every writer of an id <= i
  has an xid <= horizon(i), so it had finished: its events are visible to that statement or
  were rolled back and never will be. Because horizons never decrease, the readable events
  are a prefix of the ids, and a cursor that moves past the last id it was given skips nothing.

So any transaction with an xid that stays open in this database (or anywhere on the server, if
the role cannot see other roles' backends, or a forgotten prepared transaction) holds the feed
back until it ends: idle_in_transaction_session_timeout bounds that.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from callbacks.web import jsonprovider

# Readable: the horizon is below the oldest transaction that was still running, at the reading
# statement's snapshot, in THIS database or in one we cannot tell. A writer of our events runs
# in this database, so transactions known to be elsewhere cannot hold an id back; leaving them
# out keeps another application's (or another test worker's) long transaction from stalling
# the feed. pg_stat_activity shows the xid of other roles' backends only with pg_read_all_stats:
# without it they stay in, as does a transaction that ended after the snapshot was taken (it
# is invisible to the snapshot, so it must count as running). The first comparison, with the
# snapshot's xmin, settles almost every row; PostgreSQL evaluates the second, and reads
# pg_stat_activity, only for rows the first one holds back. Rows from before migration 0004 have
# no horizon: they were committed in id order under the old global lock.
READABLE = sa.text("""(
  coalesce(events.horizon, 0) < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
  OR coalesce(events.horizon, 0) < (
    SELECT coalesce(min(x::text::bigint), pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
      FROM pg_snapshot_xip(pg_current_snapshot()) AS x
     WHERE NOT EXISTS (SELECT FROM pg_stat_get_activity(NULL) AS a
                        WHERE a.backend_xid = xid(x)
                          AND a.datid <> (SELECT oid FROM pg_database
                                           WHERE datname = current_database()))))""")


def publish(conn: sa.Connection, pending: list[tuple[dict[str, Any], datetime]], also: str = "") -> None:
    """Append a transaction's events and commit, in ONE message to the server.

    `kco_append_events` draws the ids and their horizon under its short lock; the NOTIFY and
    the COMMIT (with its WAL flush) follow outside any shared lock, so commits of different
    sessions overlap and can share a flush. One message still saves the round trips and keeps
    the transaction from idling between statements, which would hold every feed reader back
    (see above). Without bound parameters (a message with several statements uses the simple
    query protocol), so psycopg quotes the batch itself. `also` is one more statement of the
    same transaction, run after the events are in (the webhook outbox's INSERT). The
    transaction is over when this returns; the SQLAlchemy commit that follows finds nothing
    left to commit.
    """
    from psycopg import sql

    batch = jsonprovider.dumps([{"session": e["session"], "type": e["type"],
                                 "version": e["version"], "at": at.isoformat(), "data": e["data"]}
                                for e, at in pending])
    message = sql.SQL(
        "SELECT id, pg_notify('kco_events', id::text) FROM kco_append_events({batch}::json) AS id"
        " ORDER BY id; {also}COMMIT").format(batch=sql.Literal(batch),
                                             also=sql.SQL(f"{also}; " if also else ""))
    raw = conn.connection.driver_connection
    assert raw is not None  # a connection inside its transaction
    with raw.cursor() as cursor:
        cursor.execute(message.as_string(raw))  # positioned on the first result: the ids
        for (event, _), (event_id, _) in zip(pending, cursor.fetchall(), strict=True):
            event["id"] = event_id
