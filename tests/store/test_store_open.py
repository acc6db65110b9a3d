"""Opening a store: URLs, SQLite's settings, migrations, ping and close."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from flotilla import counters
from flotilla.domain.errors import UsageError
from flotilla.domain.worker import Worker
from flotilla.store import SqlStore, Store, StoreUnavailable, open_store
from flotilla.store.engine import parse_store_url, redact
from flotilla.store.migrate import current_revision, head_revision
from flotilla.store.schema import metadata

Factory = Callable[..., Worker]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        (
            "postgresql+psycopg://u@h/db?sslmode=disable",
            "postgresql+psycopg://u@h/db?sslmode=disable",
        ),
        ("sqlite:////var/x/state.db", "sqlite:////var/x/state.db"),
        ("sqlite+pysqlite:////var/x/state.db", "sqlite:////var/x/state.db"),
        ("/var/x/state.db", "sqlite:////var/x/state.db"),
    ],
)
def test_urls_are_normalized(given: str, expected: str) -> None:
    assert parse_store_url(given).render_as_string(hide_password=False) == expected


def test_relative_sqlite_paths_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_store_url("sqlite:///rel/state.db").database == str(tmp_path / "rel/state.db")
    assert parse_store_url("rel.db").database == str(tmp_path / "rel.db")


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("", "the store URL is empty"),
        ("mysql://u@h/db", "is not supported"),
        ("postgresql+asyncpg://u@h/db", "names driver 'asyncpg'"),
        ("postgresql://u@h", "names no database"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///file:x?mode=memory&uri=true", "in-memory"),
    ],
)
def test_bad_urls_are_refused(given: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        open_store(given)


def test_passwords_are_never_shown() -> None:
    url = parse_store_url("postgresql://fleet:s3cret@127.0.0.1:1/db")
    assert redact(url) == "postgresql+psycopg://fleet:***@127.0.0.1:1/db"
    with pytest.raises(UsageError) as caught:
        parse_store_url("postgresql+asyncpg://fleet:s3cret@h/db")
    assert "s3cret" not in str(caught.value)


def test_unreachable_database_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        open_store("postgresql://fleet:s3cret@127.0.0.1:1/db")  # nothing listens on port 1
    assert "cannot open the store at postgresql+psycopg://fleet:***@127.0.0.1:1/db" in str(
        caught.value
    )
    assert "s3cret" not in str(caught.value)
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite:///{tmp_path}")  # a folder, not a file


def test_sqlite_settings(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.db"  # missing folders are made
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        pragma = conn.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 30_000
    store.close()
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_migrations_reach_head_and_match_the_schema(store: Store) -> None:
    assert isinstance(store, SqlStore)
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_reopening_is_idempotent_and_keeps_data(store_url: str, new_worker: Factory) -> None:
    first = open_store(store_url)
    first.create_worker(new_worker("kept"))
    first.close()
    for seq in (2, 3):
        again = open_store(store_url)
        assert again.list_workers()[0].name == "kept"
        assert again.create_worker(new_worker(f"n{seq}")).seq == seq
        again.close()
    engine = sa.create_engine(parse_store_url(store_url))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        names = conn.execute(sa.text("SELECT name FROM sequences ORDER BY name")).scalars()
        assert list(names) == ["event_seq", "worker_seq"]  # each made once
        assert conn.execute(sa.text("SELECT count(*) FROM workers")).scalar() == 3
    engine.dispose()


def test_ping_and_url(store: Store, store_url: str) -> None:
    assert store.ping() is True
    assert "://" in store.url and "***" not in store.url  # no password in the test URLs
    assert store.url.startswith(("sqlite:///", "postgresql+psycopg://"))


def test_ping_counts_a_dead_database(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    store = open_store(str(folder / "state.db"))
    assert store.ping()
    store.close()  # no pooled connection left to the old file
    folder.rename(tmp_path / "moved")
    folder.write_text("a file where the database's folder was")
    before = counters.snapshot().get("store.ping_failed", 0)
    assert store.ping() is False
    assert counters.snapshot()["store.ping_failed"] == before + 1


def test_sqlite_writers_take_the_lock_up_front(tmp_path: Path, new_worker: Factory) -> None:
    """Writes BEGIN IMMEDIATE (queue on the lock), reads a plain BEGIN (never block writers)."""
    store = open_store(str(tmp_path / "state.db"))
    assert isinstance(store, SqlStore)
    begins: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    made = store.create_worker(new_worker("a"))
    store.update_worker(made.id, pid=1)
    store.take_next_prompt(made.id)
    assert begins == ["BEGIN IMMEDIATE"] * 3
    begins.clear()
    store.get_worker(made.id)
    store.list_workers()
    store.history(made.id)
    assert begins == ["BEGIN"] * 3
    # While another connection holds the write lock, a write waits rather than failing.
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    writer = threading.Thread(target=store.update_worker, args=(made.id,), kwargs={"pid": 2})
    writer.start()
    writer.join(0.5)
    assert writer.is_alive()  # waiting for the lock
    assert store.get_worker(made.id).pid == 1  # readers are not blocked meanwhile
    other.execute("COMMIT")
    other.close()
    writer.join(10)
    assert not writer.is_alive()
    assert store.get_worker(made.id).pid == 2
    store.close()
