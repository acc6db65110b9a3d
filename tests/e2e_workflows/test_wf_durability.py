"""kill -9 of the daemon in the middle of each template, then a restart (any `fleet` call
starts it): the same final result as an uninterrupted run, and no stage run twice
(every agent start is counted in a file outside the worktrees)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from e2e_support import FLEET, Fleet, git
from sqlalchemy.engine import make_url
from workflow_support import (
    BREAK,
    FIX,
    TERMINAL,
    Agents,
    add_tests,
    configure,
    kill_daemon,
    stage,
    start,
    wait_done,
    wait_stage,
)

from flotilla.config.paths import socket_path

pytestmark = pytest.mark.slow


def interrupt(fleet: Fleet, agents: Agents, workflow_id: str, stage_name: str, gate: str) -> None:
    """Wait until `stage_name` runs (its agent waits on `gate`), kill -9 the daemon, and let
    the agent go on while no daemon watches; the next `fleet` call starts a new one."""
    wait_stage(fleet, workflow_id, stage_name, ("running",))
    deadline = time.monotonic() + 30
    while not any(stage_name in line for line in agents.starts()):
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.05)
    kill_daemon(fleet)
    agents.release(gate)
    time.sleep(0.3)  # the agent finishes while there is no daemon


def no_duplicates(agents: Agents) -> list[str]:
    starts = agents.starts()
    twice = [name for name, n in Counter(starts).items() if n > 1]
    assert not twice, f"started more than once: {twice}"
    return starts


def test_write_review_refine_survives_a_kill(fleet: Fleet, agents: Agents) -> None:
    agents.on("implement", FIX)
    agents.on("review", agents.gate("review"))
    agents.on("refine", "echo refined > notes.md\n")
    wf = start(
        fleet, "write-review-refine", "-p", "answer 42",
        "--param", "writer=scripted", "--param", "reviewer=scripted", "--merge",
    )  # fmt: skip
    interrupt(fleet, agents, wf["id"], "review", "review")
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    assert no_duplicates(agents) == [
        f"wf-{wf['id']}-{s}" for s in ("implement", "review", "refine")
    ]
    assert all(s["attempt"] == 1 for s in done["stages"])
    assert "return 42" in git(fleet.repo, "show", "main:app.py")
    assert git(fleet.repo, "show", "main:notes.md") == "refined\n"


def test_fanout_review_survives_a_kill(fleet: Fleet, agents: Agents) -> None:
    agents.on("work-1", "echo 1 > one.txt\n")
    agents.on("work-2", agents.gate("work") + "echo 2 > two.txt\n")
    agents.on("work-3", "echo 3 > three.txt\n")
    wf = start(
        fleet, "fanout-review", "-p", "parts",
        "--param", "agents=scripted", "--param", "reviewer=scripted",
    )  # fmt: skip
    interrupt(fleet, agents, wf["id"], "work", "work")
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    assert len(no_duplicates(agents)) == 4
    review = agents.prompt(f"wf-{wf['id']}-review")
    assert all(name in review for name in ("one.txt", "two.txt", "three.txt"))


def test_compete_survives_a_kill(fleet: Fleet, agents: Agents) -> None:
    add_tests(fleet)
    configure(fleet, agents.root, tests=True)
    agents.on("implement-1", BREAK)
    agents.on("implement-2", agents.gate("fixer") + FIX)
    wf = start(
        fleet, "compete", "-p", "pass the tests", "--param", "agents=scripted",
        "--param", "count=3", "--param", "judge=shell", "--merge",
    )  # fmt: skip
    interrupt(fleet, agents, wf["id"], "implement", "fixer")
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    assert done["winner"] == f"wf-{wf['id']}-implement-2"
    assert len(no_duplicates(agents)) == 3
    assert [r["place"] for r in done["ranking"]["implement"]["rows"]] == [1, 2, 3]
    assert "return 42" in git(fleet.repo, "show", "main:app.py")


def test_judge_survives_a_kill(fleet: Fleet, agents: Agents) -> None:
    agents.on("candidates-1", "echo a > a.txt\n")
    agents.on("candidates-2", "echo b > b.txt\n")
    agents.on("judge", agents.gate("judge") + 'echo "WINNER: wf-$WF-candidates-1"\n')
    wf = start(
        fleet, "judge", "-p", "a file", "--param", "agents=scripted",
        "--param", "count=2", "--param", "judge=shell",
    )  # fmt: skip
    interrupt(fleet, agents, wf["id"], "judge", "judge")
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    assert done["winner"] == f"wf-{wf['id']}-candidates-1"
    assert len(no_duplicates(agents)) == 3


CHAIN = """
name = "chain"
task_prompt = "go"

[[stages]]
name = "s1"
agent = "scripted"
prompt = "{task_prompt}"

[[stages]]
name = "s2"
agent = "scripted"
depends_on = ["s1"]
worktree = "inherit"
prompt = "{stages.s1.files}"

[[stages]]
name = "s3"
agent = "scripted"
count = 2
depends_on = ["s1"]
prompt = "{task_prompt}"

[[stages]]
name = "s4"
agent = "scripted"
depends_on = ["s2", "s3"]
worktree = "inherit"
inherit_from = "s2"
prompt = "{stages.s3.summary}"
"""


MAX_KILLS = 8


def _serving(fleet: Fleet) -> bool:
    """The daemon accepts connections (a killed one leaves its socket file behind)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path(fleet.env)))
        except OSError:
            return False
    return True


def _daemon_pid(fleet: Fleet) -> int | None:
    try:
        pid: int = json.loads((fleet.home / "daemon.pid").read_text())["pid"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    return pid


def _status_tolerant(fleet: Fleet, workflow_id: str) -> dict[str, Any] | None:
    """`workflow status`, or None when the daemon was killed under it."""
    proc = subprocess.run(
        [*FLEET, "--json", "workflow", "status", workflow_id],
        cwd=fleet.repo,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


@pytest.mark.parametrize("seed", [3, 7])
def test_kills_at_random_moments_lose_and_repeat_nothing(
    fleet: Fleet, agents: Agents, seed: int
) -> None:
    for name in ("s1", "s2", "s3", "s4"):
        # long enough for several kills: the engine itself takes milliseconds a stage
        agents.on(name, f"sleep 1.0\necho {name} >> {name}.txt\n")
    path = Path(fleet.home.parent / "chain.toml")
    path.write_text(CHAIN)
    wf = start(fleet, str(path))
    rng = random.Random(int(os.environ.get("WF_KILL_SEED", seed)))
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        """kill -9 each new daemon a random moment after it began to serve."""
        while not stop.is_set() and len(killed) < MAX_KILLS:
            pid = _daemon_pid(fleet)
            if pid is None or pid in killed or not _serving(fleet):
                time.sleep(0.02)
                continue
            time.sleep(rng.uniform(0.0, 0.5))
            with contextlib.suppress(ProcessLookupError):  # it may have died meanwhile
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            # A `fleet` call whose own new daemon was killed would wait out its start
            # timeout: start the next daemon now (a second start is a no-op).
            subprocess.run(
                [*FLEET, "daemon", "start"],
                cwd=fleet.repo,
                env=fleet.env,
                capture_output=True,
                timeout=60,
                check=False,
            )

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data = _status_tolerant(fleet, wf["id"])  # also starts a killed daemon again
        if data is not None and data["state"] in TERMINAL:
            break
        time.sleep(0.05)
    stop.set()
    thread.join()
    kills = len(killed)
    done = wait_done(fleet, wf["id"])
    assert kills >= 2, killed  # the run did span daemon deaths
    assert done["state"] == "succeeded", done
    assert [s["state"] for s in done["stages"]] == ["succeeded"] * 4
    assert all(s["attempt"] == 1 for s in done["stages"])
    starts = no_duplicates(agents)
    assert sorted(starts) == sorted(
        f"wf-{wf['id']}-{s}" for s in ("s1", "s2", "s3-1", "s3-2", "s4")
    )
    # s1, s2 and s4 worked in one worktree, one after the other.
    s4 = stage(done, "s4")["workers"][0]
    for name in ("s1", "s2", "s4"):
        assert (Path(s4["worktree"]) / f"{name}.txt").read_text() == f"{name}\n"
    assert all(w["attempt"] == 1 for w in fleet.workers().values())


@pytest.mark.postgres
def test_a_workflow_on_postgresql_survives_a_kill(
    fleet: Fleet, agents: Agents, pg_database: str
) -> None:
    schema = f"wf_{secrets.token_hex(4)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    fleet.env["FLOTILLA_DATABASE_URL"] = url.render_as_string(hide_password=False)
    agents.on("implement", FIX)
    agents.on("review", agents.gate("review"))
    wf = start(
        fleet, "write-review-refine", "-p", "answer 42",
        "--param", "writer=scripted", "--param", "reviewer=scripted",
    )  # fmt: skip
    interrupt(fleet, agents, wf["id"], "review", "review")
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    assert len(no_duplicates(agents)) == 3
    with psycopg.connect(pg_database, options=f"-csearch_path={schema}") as conn:
        rows = conn.execute("SELECT name, state FROM workflow_stages ORDER BY position").fetchall()
    assert rows == [("implement", "succeeded"), ("review", "succeeded"), ("refine", "succeeded")]
    assert not (fleet.home / "flotilla.db").exists()
