"""Bring a database to the newest schema, safely when several processes open it at once.

Each opener takes a lock for the whole upgrade, so the first one migrates and
the others, once they get the lock, find the schema at head and do nothing:
PostgreSQL by a transaction-scoped advisory lock, SQLite by BEGIN IMMEDIATE
(the database's single write lock, waited for up to the busy timeout).
The migration runs inside that one transaction: it applies whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from flotilla.store.engine import WRITE, is_sqlite

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit key works; this is b"flotilla" read as an integer.
_PG_LOCK_KEY = int.from_bytes(b"flotilla", "big") & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code, pointing at the migrations in this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store ships at least one migration"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Run every migration not yet applied, under the lock. Idempotent."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn.execution_options(**{WRITE: True})
        with conn.begin():
            if not is_sqlite(engine):
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            command.upgrade(alembic_config(conn), "head")
