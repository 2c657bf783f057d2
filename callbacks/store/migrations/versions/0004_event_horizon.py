"""events.horizon: PostgreSQL writers no longer serialize their commits (docs/event-ordering.md).

A writer draws its event ids, and records their horizon, inside `kco_append_events`, under an
advisory lock held only for that call: never across the COMMIT or its WAL flush. A reader hands
out an event only once its horizon is below the oldest transaction still running, so no smaller
id can commit after it. Rows written before this revision keep a NULL horizon, which readers
count as readable: they were committed in id order under the old global lock.

SQLite gets the column too (the schema reads the same) but leaves it NULL: one writer at a time
already makes ids visible in id order there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The function's lock key is frozen here; callbacks.store.database.EVENT_ORDER_LOCK names the
# same number for the benches. The register is a sequence because setval is not transactional:
# a writer that rolls back still leaves its xid in it, which only makes later horizons safer.
HORIZON_REGISTER = "CREATE SEQUENCE kco_event_horizon AS bigint MINVALUE 0 START 0"

APPEND_EVENTS = """
CREATE FUNCTION kco_append_events(batch json) RETURNS SETOF integer
LANGUAGE plpgsql AS $fn$
DECLARE
  h bigint;
BEGIN
  -- The lock is taken and released inside the block, so that whatever interrupts the call
  -- (an error, a statement_timeout, a cancel) lands in the handler, which releases it if this
  -- backend holds it: a session-level lock must never outlive the call, or every other
  -- writer would wait for this pooled connection forever.
  BEGIN
    PERFORM pg_advisory_lock(7037807);  -- 0x6B636F, "kco"
    h := greatest((SELECT last_value FROM kco_event_horizon),
                  pg_current_xact_id()::text::bigint);
    PERFORM setval('kco_event_horizon', h);
    RETURN QUERY
      INSERT INTO events (session, type, version, at, data, horizon)
      SELECT e.session, e.type, e.version, e.at, e.data, h
        FROM ROWS FROM (json_to_recordset(batch) AS (session text, type text, version integer,
                                                     at timestamp, data json))
             WITH ORDINALITY AS e(session, type, version, at, data, n)
       ORDER BY e.n
      RETURNING id;
    PERFORM pg_advisory_unlock(7037807);
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    IF EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                AND classid = 0 AND objid = 7037807 AND objsubid = 1) THEN
      PERFORM pg_advisory_unlock(7037807);
    END IF;
    RAISE;
  END;
END
$fn$;
"""


def upgrade() -> None:
    op.add_column("events", sa.Column("horizon", sa.BigInteger))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(HORIZON_REGISTER)
        op.execute(APPEND_EVENTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION kco_append_events(json)")
        op.execute("DROP SEQUENCE kco_event_horizon")
    op.drop_column("events", "horizon")
