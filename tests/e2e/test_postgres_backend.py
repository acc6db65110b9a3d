"""The same lifecycle on PostgreSQL: the daemon's store chosen by FLOTILLA_DATABASE_URL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from e2e_support import Fleet
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get("FLOTILLA_TEST_PG_URL", DEFAULT_PG_URL)
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable at {base}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"flotilla_e2e_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(base).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_workers_run_and_are_stored_in_postgres(fleet: Fleet, pg_url: str) -> None:
    fleet.env["FLOTILLA_DATABASE_URL"] = pg_url
    script = fleet.script("pg", '[[steps]]\naction = "write"\npath = "pg.txt"\ncontent = "x"\n')
    (fleet.repo / ".flotilla").mkdir()
    (fleet.repo / ".flotilla" / "config.toml").write_text(
        f'[project]\ndefault_agent = "scripted"\n[agents.scripted]\nscript = "{script}"\n'
    )
    fleet.run("multi", "pg-a:one", "pg-b:two")
    workers = fleet.wait_terminal("pg-a", "pg-b")
    assert {w["state"] for w in workers.values()} == {"succeeded"}
    health = fleet.json("daemon", "status")["health"]
    assert health["store"]["url"].startswith("postgresql")
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT name, state FROM workers ORDER BY name").fetchall()
    assert rows == [("pg-a", "succeeded"), ("pg-b", "succeeded")]
    assert not (fleet.home / "flotilla.db").exists()
