"""Bus fixtures: a store on SQLite (a temporary file) and on PostgreSQL (a fresh schema per
test in the session's database), its bus tables, and worker rows without processes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from flotilla.store import SqlStore, open_store
from flotilla.store.bus_sql import BusStore, bus_store


@pytest.fixture
def bus_pg_url(pg_database: str) -> str:
    schema = f"b_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def bus_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bus_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    fixture = "bus_sqlite_url" if request.param == "sqlite" else "bus_pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def sql_store(bus_url: str) -> Iterator[SqlStore]:
    store = open_store(bus_url)
    assert isinstance(store, SqlStore)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def lite_store(bus_sqlite_url: str) -> Iterator[SqlStore]:
    """SQLite only: for tests about fan-out, not about the database."""
    store = open_store(bus_sqlite_url)
    assert isinstance(store, SqlStore)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def db(sql_store: SqlStore) -> BusStore:
    return bus_store(sql_store)
