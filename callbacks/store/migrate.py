"""Schema migrations with Alembic, driven from code so `flask kco migrate` needs no alembic.ini.

Several gunicorn workers may start at once and each runs `upgrade` outside production; on
PostgreSQL a transaction-scoped advisory lock makes the second one wait and then find the
schema current, on SQLite `BEGIN IMMEDIATE` does the same.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6B636F2D6D  # "kco-m"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> str:
    """Bring the database to `revision`; returns the revision it is at afterwards."""
    cfg = alembic_config()
    with engine.connect() as conn:
        conn.execution_options(kco_write=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
