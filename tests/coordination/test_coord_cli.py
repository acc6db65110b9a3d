"""The `fleet team|swarm|board|checkpoint` commands: the real CLI as a subprocess, talking
to the test service over the state home's Unix socket (as it talks to its daemon)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from coord_server import Served
from coord_support import git

FLEET = [sys.executable, "-m", "flotilla.cli"]


def fleet(
    served: Served, repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLEET, *args],
        cwd=repo,
        env={**served.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def ok(served: Served, repo: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    proc = fleet(served, repo, "--json", *args, env=env)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def refused(served: Served, repo: Path, *args: str) -> str:
    """The one line a refused command prints; it must exit 2 (bad input)."""
    proc = fleet(served, repo, *args)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.slow
def test_teams_swarms_and_the_board_from_the_command_line(served: Served, project: Path) -> None:
    team = ok(served, project, "team", "create", "alpha", "--lead", "boss")
    assert team["project"] == str(project.resolve())
    ok(served, project, "team", "add", "alpha", "watcher", "--role", "monitor")
    spawned = ok(served, project, "team", "spawn", "alpha", "w1", "-p", "build part one")
    assert spawned["worker"]["branch"] == "flotilla/w1"
    status = ok(served, project, "team", "status", "alpha")
    assert {m["agent"]: m["role"] for m in status["members"]} == {
        "boss": "team-lead",
        "watcher": "monitor",
        "w1": "worker",
    }
    human = fleet(served, project, "team", "status", "alpha")
    assert human.returncode == 0 and "watcher" in human.stdout and "monitor" in human.stdout

    ok(served, project, "swarm", "create", "hive", "--goal", "ship it", "--max", "2")
    as_w1 = {"FLOTILLA_WORKER": "w1"}  # run by an agent: it acts as itself
    assert ok(served, project, "swarm", "join", "hive", env=as_w1)["members"] == ["w1"]
    first = ok(served, project, "board", "post", "hive", "findings", "bug in parse()", env=as_w1)
    assert first["author"] == "w1"
    ok(served, project, "board", "post", "hive", "plans", "fix lex() next", "--as", "boss")
    page = ok(served, project, "board", "read", "hive")
    assert [(p["author"], p["body"]) for p in page["posts"]] == [
        ("w1", "bug in parse()"),
        ("boss", "fix lex() next"),
    ]
    later = ok(served, project, "board", "read", "hive", "--since", str(first["id"]))
    assert [p["body"] for p in later["posts"]] == ["fix lex() next"]
    readable = fleet(served, project, "board", "read", "hive", "--topic", "findings")
    assert "bug in parse()" in readable.stdout and f"--since {first['id']}" in readable.stdout

    assert "team name '../x' contains a path separator" in refused(
        served, project, "team", "create", "../x"
    )
    assert "already exists" in refused(served, project, "team", "create", "alpha")
    assert "no team named 'ghost'" in refused(served, project, "team", "status", "ghost")
    assert "swarm name '../hive'" in refused(served, project, "board", "read", "../hive")
    assert "unknown role 'god'" in refused(
        served, project, "team", "add", "alpha", "x", "-r", "god"
    )


@pytest.mark.slow
def test_checkpoints_from_the_command_line(served: Served, project: Path) -> None:
    created = ok(served, project, "team", "create", "alpha")
    assert created["name"] == "alpha"
    ok(served, project, "team", "spawn", "alpha", "w1", "-p", "build part one")
    with served.http(served.token("root", "default", "coordinator")) as http:
        served.wait_worker(http, str(project), "w1")
    # an agent checkpoints itself: the worker defaults to $FLOTILLA_WORKER
    saved = ok(
        served, project, "checkpoint", "save", "p1", "--notes", "then p2",
        env={"FLOTILLA_WORKER": "w1"},
    )  # fmt: skip
    assert saved["worker"] == "w1" and saved["notes"] == "then p2"
    assert [c["name"] for c in ok(served, project, "checkpoint", "list")] == ["p1"]
    restored = ok(served, project, "checkpoint", "restore", "p1", "w2", "-p", "add part two")
    assert restored["resumed_session"] == saved["session_id"]
    assert restored["worker"]["base_ref"] == saved["commit"]
    with served.http(served.token("root", "default", "coordinator")) as http:
        done = served.wait_worker(http, str(project), "w2")
    assert done["state"] == "succeeded"
    assert git(Path(done["worktree"]), "rev-parse", "HEAD~1").strip() == saved["commit"]

    assert "name the worker to checkpoint" in refused(served, project, "checkpoint", "save", "p2")
    assert "already exists" in refused(served, project, "checkpoint", "save", "p1", "-w", "w1")
    assert "no checkpoint named 'nope'" in refused(
        served, project, "checkpoint", "restore", "nope", "w3"
    )
    assert "checkpoint name '../p1'" in refused(
        served, project, "checkpoint", "restore", "../p1", "w3"
    )
    assert [c["name"] for c in ok(served, project, "checkpoint", "list")] == ["p1"]
