"""The same lifecycle on PostgreSQL: the daemon's store chosen by FLOTILLA_DATABASE_URL."""

from __future__ import annotations

import psycopg
import pytest
from e2e_support import Fleet


@pytest.mark.postgres
def test_workers_run_and_are_stored_in_postgres(fleet: Fleet, pg_database: str) -> None:
    pg_url = pg_database
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
