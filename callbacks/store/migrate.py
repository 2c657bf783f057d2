"""Schema migrations with Alembic, driven from code so `flask kco migrate` needs no alembic.ini.

Several gunicorn workers may start at once and each runs `upgrade` outside production; on
PostgreSQL a transaction-scoped advisory lock makes the second one wait and then find the
schema current, on SQLite `BEGIN IMMEDIATE` does the same.

Every process (each gunicorn worker, every `flask kco …` command, even `--help`) migrates at
start-up, so Alembic's own INFO lines are kept quiet and a migration that actually runs says so
in one line; an up-to-date schema says nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

# Alembic logs its plugins (when imported), its DDL mode and every step at INFO; the one line
# below says enough. Set before the import, or the plugin lines get out.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6B636F2D6D  # "kco-m"

log = logging.getLogger(__name__)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database to `revision`; returns (the revision before, the revision after),
    equal when there was nothing to do."""
    cfg = alembic_config()
    target = ScriptDirectory.from_config(cfg).get_revision(revision).revision
    with engine.connect() as conn:
        conn.execution_options(kco_write=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            before = _current(conn)
            if before == target:
                return before, before
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            after = _current(conn)
    log.info("database %s migrated from %s to revision %s",
             engine.url.render_as_string(hide_password=True),
             f"revision {before}" if before else "an empty schema", after)
    return before, after


def _current(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()
