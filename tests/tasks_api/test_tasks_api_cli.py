"""`fleet task` end to end: the real CLI as subprocesses against the real daemon it starts
(SQLite): add with dependencies, claim in priority order, agents held to their own claims,
done/fail with results, the history in `show`, a lease lapsing through the daemon's own
sweep, and bad input answered with one line, exit 2 and nothing stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Fleet, fleet_session

W1 = {"FLOTILLA_WORKER": "w1"}
W2 = {"FLOTILLA_WORKER": "w2", "FLOTILLA_TEAM": "core"}


def _refused(fleet: Fleet, *args: str, env: dict[str, str] | None = None) -> str:
    proc = fleet.run(*args, check=False, env=env)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _add(fleet: Fleet, title: str, *args: str) -> dict[str, Any]:
    task: dict[str, Any] = fleet.json("task", "add", title, "--team", "core", *args)
    return task


@pytest.mark.slow
def test_the_task_commands_end_to_end(tmp_path: Path) -> None:
    with fleet_session(tmp_path) as fleet:
        schema = _add(fleet, "design the schema", "--label", "db", "--priority", "5")
        queries = _add(fleet, "write the queries", "--after", schema["id"], "--priority", "9")
        docs = _add(fleet, "document it", "-l", "docs", "-l", "db")
        assert queries["depends_on"] == [schema["id"]] and docs["labels"] == ["docs", "db"]
        listed = fleet.json("task", "list", "--team", "core")
        assert [t["id"] for t in listed] == [schema["id"], queries["id"], docs["id"]]
        table = fleet.run("task", "list", "--state", "queued").stdout
        assert all(t["id"] in table for t in listed) and "write the queries" in table

        claimed = fleet.json("task", "claim", "--as", "w1", "--team", "core")["task"]
        assert claimed["id"] == schema["id"]  # the queries wait for it despite priority 9
        message = _refused(fleet, "task", "done", schema["id"], env=W2)
        assert f"task {schema['id']} is held by w1, not w2" in message
        done = fleet.json("task", "done", schema["id"], "--result", "3 tables", env=W1)
        assert (done["state"], done["result"], done["assignee"]) == ("done", "3 tables", "w1")

        mine = fleet.json("task", "claim", env=W2)["task"]  # an agent: itself, its team
        assert (mine["id"], mine["assignee"]) == (queries["id"], "w2")
        failed = fleet.json("task", "fail", queries["id"], "the schema is wrong", env=W2)
        assert (failed["state"], failed["error"]) == ("failed", "the schema is wrong")
        shown = fleet.run("task", "show", queries["id"]).stdout
        assert f"after: {schema['id']} (done): ready" in shown
        assert "claimed by w2" in shown and "failed by w2: the schema is wrong" in shown

        lapsing = fleet.json("task", "claim", "--as", "w3", "--lease", "0.5")["task"]
        assert lapsing["id"] == docs["id"]
        deadline = time.monotonic() + 20  # the daemon sweeps every 2 s
        while fleet.json("task", "show", docs["id"])["state"] != "queued":
            assert time.monotonic() < deadline, "the lease of w3 did not lapse"
            time.sleep(0.3)
        history = fleet.json("task", "show", docs["id"])["history"]
        assert [e["kind"] for e in history] == ["created", "claimed", "lease_expired"]
        assert history[-1]["message"] == "lease of w3 expired; back in the queue"
        assert fleet.run("task", "claim", "--team", "nobody").stdout.strip() == "nothing to claim"

        stored = fleet.json("task", "list")
        assert "title: String should have at least 1 character" in _refused(
            fleet, "task", "add", ""
        )
        assert "priority:" in _refused(fleet, "task", "add", "x", "--priority", "99999999")
        assert "label 'a b' is not valid" in _refused(fleet, "task", "add", "x", "-l", "a b")
        assert "not a task id" in _refused(fleet, "task", "show", "../etc")
        assert "no task with id 't-0000000000'" in _refused(fleet, "task", "show", "t-0000000000")
        assert "is done and cannot become done" in _refused(fleet, "task", "done", schema["id"])
        assert fleet.json("task", "list") == stored
