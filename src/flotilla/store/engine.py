"""Store URLs and engines: which database, which driver, and SQLite's settings.

SQLite gets WAL (readers never block the writer), a busy timeout (a second
process waits for the lock instead of failing), foreign keys, and transactions
that Flotilla begins itself: BEGIN IMMEDIATE for writes, so two writers queue
on the lock up front rather than deadlocking when a read turns into a write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError

from flotilla.domain.errors import UsageError

BUSY_TIMEOUT_MS = 30_000
WRITE = "flotilla_write"  # execution option: this transaction will write

_URL_HELP = "use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"


def parse_store_url(url: str) -> URL:
    """Turn a user's store URL into the SQLAlchemy URL with our driver.

    `postgresql://` and `postgres://` become `postgresql+psycopg://`; a bare
    path (no scheme) is taken as a SQLite file.
    """
    text = url.strip()
    if not text:
        raise UsageError(f"the store URL is empty: {_URL_HELP}")
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().absolute()))
    if text.startswith("postgres://"):
        text = "postgresql://" + text.removeprefix("postgres://")
    try:
        parsed = make_url(text)
    except ArgumentError as exc:
        raise UsageError(f"the store URL {url!r} is not a valid URL: {_URL_HELP}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgresql":
        if driver not in ("", "psycopg"):
            raise UsageError(
                f"the store URL {redact(parsed)!r} names driver {driver!r}: "
                "drop it (postgresql://...) or use postgresql+psycopg://"
            )
        if not parsed.database:
            raise UsageError(f"the store URL {redact(parsed)!r} names no database: {_URL_HELP}")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise UsageError(f"the store URL {url!r} names driver {driver!r}: use sqlite:///PATH")
        if not parsed.database or parsed.database == ":memory:" or "mode=memory" in text:
            raise UsageError(
                f"the store URL {url!r} is an in-memory SQLite database, which each "
                "connection would see empty: give a file, sqlite:///PATH"
            )
        path = Path(parsed.database).expanduser().absolute()
        return parsed.set(drivername="sqlite", database=str(path))
    raise UsageError(f"the store URL {redact(parsed)!r} is not supported: {_URL_HELP}")


def redact(url: URL) -> str:
    """The URL for display: the password, if any, replaced by ***."""
    return url.render_as_string(hide_password=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: URL) -> Engine:
    """An engine for `url` (from parse_store_url), SQLite's settings applied."""
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=8,
        max_overflow=16,
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let us emit BEGIN ourselves (pysqlite's own is deferred and late).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first, so the switch to WAL also waits for a lock.
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
