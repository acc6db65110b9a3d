"""Store fixtures: every test runs on SQLite (a temporary file) and on PostgreSQL.

PostgreSQL: one fresh database per test session (flotilla_test_<random>) on the
server of $FLOTILLA_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test),
one fresh schema per test inside it, the database dropped at the end. A missing
server skips those tests locally and fails them in CI (CI=true).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from flotilla.domain.worker import Worker
from flotilla.store import Store, open_store


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A store URL whose tables go into a schema of their own, fresh for this test."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


class WorkerFactory:
    """Makes Workers with the required fields filled in; ids are unique per test."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self, name: str, project: str = "/repo/a", **fields: Any) -> Worker:
        self.made += 1
        values: dict[str, Any] = {
            "id": f"w{self.made:04d}-{secrets.token_hex(3)}",
            "name": name,
            "project": project,
            "agent": "claude",
            "prompt": f"do {name}",
        }
        values.update(fields)
        return Worker(**values)


@pytest.fixture
def new_worker() -> WorkerFactory:
    return WorkerFactory()
