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
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:  # Alembic is imported only when a migration runs (~11 MiB per worker)
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6B636F2D6D  # "kco-m"
# The newest revision in migrations/versions (tests/test_store.py holds it to Alembic's head).
# A worker whose database is already there does not import Alembic at all: Alembic, Mako and
# Pygments were ~11 MiB of every gunicorn worker's memory, used once at start-up.
HEAD = "0007"

log = logging.getLogger(__name__)
# Alembic logs its plugins (when imported), its DDL mode and every step at INFO; the one line
# upgrade() writes says enough. Set before Alembic is imported, or the plugin lines get out.
logging.getLogger("alembic").setLevel(logging.WARNING)


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def current_revision(engine: sa.Engine) -> str | None:
    """The database's revision, read without Alembic; None for an empty (or unreadable) schema."""
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:  # no alembic_version table yet
        return None


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database to `revision`; returns (the revision before, the revision after),
    equal when there was nothing to do."""
    if revision in ("head", HEAD) and current_revision(engine) == HEAD:
        return HEAD, HEAD
    from alembic import command
    from alembic.script import ScriptDirectory

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
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()
