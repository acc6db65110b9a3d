"""Fixtures of the coordination tests: stores on SQLite and PostgreSQL, git repositories,
and a FleetService over them.

PostgreSQL: one schema per test inside the session's database (see tests/conftest.py);
a missing server skips those tests locally and fails them in CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from coord_server import Served, serving
from coord_support import GIT_ID, make_repo
from sqlalchemy.engine import make_url

from flotilla.orchestrator.service import FleetService
from flotilla.store import open_store
from flotilla.store.base import Store


@pytest.fixture
def pg_url(pg_database: str) -> str:
    schema = f"c_{secrets.token_hex(6)}"
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


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment workers are created with: a private state home, a git identity."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    return {
        **base,
        **GIT_ID,
        "FLOTILLA_HOME": str(tmp_path / "home"),
        "FLOTILLA_USER_CONFIG": str(tmp_path / "no-user-config.toml"),
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A project whose default agent is the scripted kind (which can resume sessions);
    the shell kind (which cannot) runs `echo done`."""
    return make_repo(
        tmp_path / "repo",
        '[project]\ndefault_agent = "scripted"\n[agents.shell]\ncommand = "echo done"\n',
    )


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    """The service tests' store: the store tests cover both backends."""
    opened = open_store(sqlite_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def service(sqlite_store: Store, tmp_path: Path) -> FleetService:
    return FleetService(sqlite_store, tmp_path / "home")


@pytest.fixture
def served(tmp_path: Path, env: dict[str, str]) -> Iterator[Served]:
    """The daemon's app with the coordination routes on a free loopback port and on the
    state home's socket, with a supervisor running the agents."""
    with serving(tmp_path, env) as service:
        yield service


AGENT = """
[[steps]]
action = "write"
path = "feature.txt"
content = "part one\\n"
[[steps]]
action = "commit"
message = "part one"
[[steps]]
action = "write"
path = "draft.txt"
content = "uncommitted draft\\n"
[[steps]]
action = "say"
text = "did part one"

[[on_prompt]]
action = "append"
path = "feature.txt"
content = "part two: {prompt} (session {session_id})\\n"
[[on_prompt]]
action = "commit"
message = "part two"
[[on_prompt]]
action = "say"
text = "did part two"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository whose scripted agent does part one, and part two as a follow-up."""
    script = tmp_path / "agent.toml"
    script.write_text(AGENT)
    config = f'[project]\ndefault_agent = "scripted"\n[agents.scripted]\nscript = "{script}"\n'
    return make_repo(tmp_path / "repo", config)
