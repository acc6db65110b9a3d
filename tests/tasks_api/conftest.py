"""Fixtures of the task API tests: the daemon's API on a free loopback port over a store
on SQLite (a temporary file) or PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from tasks_api_server import TaskApi, serving_tasks


@pytest.fixture
def api_pg_url(pg_database: str) -> str:
    schema = f"ta_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def api_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    fixture = "api_sqlite_url" if request.param == "sqlite" else "api_pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def api(tmp_path: Path, api_sqlite_url: str) -> Iterator[TaskApi]:
    """On SQLite (the roles, bad input and lease tests do not depend on the backend)."""
    with serving_tasks(tmp_path, api_sqlite_url) as served:
        yield served


@pytest.fixture
def any_api(tmp_path: Path, api_url: str) -> Iterator[TaskApi]:
    """Once per backend (the claim race)."""
    with serving_tasks(tmp_path, api_url) as served:
        yield served


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskApi]:
    """One service for a module's many small cases (each compares before and after)."""
    where = tmp_path_factory.mktemp("tasks-api")
    with serving_tasks(where, f"sqlite:///{where / 'state.db'}") as served:
        yield served
