"""Task fixtures: a store on SQLite (a temporary file) and on PostgreSQL (a fresh schema
per test in the session's database), and a TaskService whose clock the test moves."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from tasks_support import ManualClock

from flotilla.orchestrator.tasks import TaskService
from flotilla.store import SqlStore, open_store


@pytest.fixture
def tasks_pg_url(pg_database: str) -> str:
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def tasks_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def tasks_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    fixture = "tasks_sqlite_url" if request.param == "sqlite" else "tasks_pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def sql_store(tasks_url: str) -> Iterator[SqlStore]:
    store = open_store(tasks_url)
    assert isinstance(store, SqlStore)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tasks(sql_store: SqlStore, clock: ManualClock) -> TaskService:
    return TaskService(sql_store, clock=clock, default_lease_s=60.0)
