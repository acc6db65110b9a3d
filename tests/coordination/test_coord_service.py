"""The coordination and checkpoint services over a real FleetService: real git repositories,
real worktrees, a real SQLite store. No agent runs here (no supervisor): these tests are
about what gets created, recorded and refused; test_coord_e2e.py runs the agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from coord_support import git

from flotilla import counters
from flotilla.domain.errors import InvalidName, NotFound, UsageError
from flotilla.orchestrator.checkpoints import REF_PREFIX, Checkpoints
from flotilla.orchestrator.coordination import Coordination
from flotilla.orchestrator.creation import CreateRequest
from flotilla.orchestrator.service import FleetService
from flotilla.workspace import list_worktrees


@pytest.fixture
def coordination(service: FleetService) -> Coordination:
    return Coordination(service)


@pytest.fixture
def checkpoints(service: FleetService) -> Checkpoints:
    return Checkpoints(service)


def _env_of(worker: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = json.loads((Path(worker["run_dir"]) / "env.json").read_text())
    return env


# -- teams ----------------------------------------------------------------------------------


def test_a_team_is_keyed_by_its_repository_root(coordination: Coordination, repo: Path) -> None:
    (repo / "sub").mkdir()
    team = coordination.create_team("alpha", str(repo / "sub"), lead="boss")
    assert team["project"] == str(repo.resolve())
    assert [m["role"] for m in team["members"]] == ["team-lead"]


def test_a_team_outside_a_repository_is_refused(coordination: Coordination, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a git repository"):
        coordination.create_team("alpha", str(tmp_path))
    assert coordination.list_teams() == []


def test_spawn_creates_a_worker_of_the_team_and_status_shows_it(
    coordination: Coordination, service: FleetService, repo: Path, env: dict[str, str]
) -> None:
    coordination.create_team("alpha", str(repo), lead="boss")
    spawned = coordination.team_spawn("alpha", "w1", "fix it", env=env)
    worker = spawned["worker"]
    assert spawned["member"]["role"] == "worker"
    assert worker["branch"] == "flotilla/w1" and Path(worker["worktree"]).is_dir()
    assert _env_of(worker)["FLOTILLA_TEAM"] == "alpha"
    assert _env_of(worker)["FLOTILLA_ROLE"] == "worker"
    coordination.team_spawn("alpha", "m1", "watch", role="merger", agent="shell", env=env)
    status = coordination.team_status("alpha")
    members = {m["agent"]: m for m in status["members"]}
    assert members["boss"]["worker"] is None  # a person, or an agent of no worker here
    assert members["w1"]["worker"]["state"] == "queued"
    assert members["m1"]["role"] == "merger" and members["m1"]["worker"]["agent"] == "shell"
    assert status["worker_states"] == {"queued": 2}


@pytest.mark.parametrize(
    ("name", "agent", "error", "message"),
    [
        ("../x", None, InvalidName, "agent name '../x' contains a path separator"),
        ("w2", "no-such-kind", UsageError, "no-such-kind"),
        ("taken", None, UsageError, "a worker named 'taken' already exists"),
        ("boss", None, UsageError, "'boss' is already in team 'alpha'"),
    ],
)
def test_a_failed_spawn_leaves_nothing(
    coordination: Coordination,
    service: FleetService,
    repo: Path,
    env: dict[str, str],
    name: str,
    agent: str | None,
    error: type[Exception],
    message: str,
) -> None:
    coordination.create_team("alpha", str(repo), lead="boss")
    service.create_worker(CreateRequest(project=str(repo), name="taken", prompt="x", env=env))
    worktrees = len(list_worktrees(repo))
    with pytest.raises(error, match=message):
        coordination.team_spawn("alpha", name, "do it", agent=agent, env=env)
    assert [m["agent"] for m in coordination.team_status("alpha")["members"]] == ["boss"]
    assert [w.name for w in service.store.list_workers()] == ["taken"]
    assert len(list_worktrees(repo)) == worktrees


def test_spawning_into_an_unknown_team_is_not_found(coordination: Coordination) -> None:
    with pytest.raises(NotFound, match="no team named 'ghost'"):
        coordination.team_spawn("ghost", "w1", "do it")


# -- swarms and the blackboard ------------------------------------------------------------------


def test_events_are_told_and_a_failing_listener_does_not_undo_the_change(
    service: FleetService,
) -> None:
    told: list[tuple[str, dict[str, Any]]] = []
    coordination = Coordination(service, on_event=lambda kind, data: told.append((kind, data)))
    coordination.create_swarm("hive", "find the bug", 3)
    coordination.join_swarm("hive", "a1")
    coordination.join_swarm("hive", "a1")  # a no-op: not told again
    post = coordination.post("hive", "a1", "findings", "it is in parse()")
    assert [k for k, _ in told] == ["swarm.created", "swarm.joined", "blackboard.posted"]
    assert told[-1][1]["id"] == post["id"]

    def broken(kind: str, data: dict[str, Any]) -> None:
        raise RuntimeError("bus down")

    failing = Coordination(service, on_event=broken)
    before = counters.snapshot().get("coordination.event_failed", 0)
    second = failing.post("hive", "a1", "findings", "and in lex()")
    assert counters.snapshot()["coordination.event_failed"] == before + 1
    page = coordination.read("hive", since=post["id"])
    assert [p["body"] for p in page["posts"]] == ["and in lex()"]
    assert page["cursor"] == second["id"]
    assert coordination.read("hive", since=second["id"]) == {
        "swarm": "hive",
        "posts": [],
        "cursor": second["id"],
    }


def test_bad_blackboard_input_is_one_clear_line(coordination: Coordination) -> None:
    coordination.create_swarm("hive", "goal", 3)
    cases: list[tuple[Any, str]] = [
        (lambda: coordination.post("hive", "a1", "../etc", "x"), "topic name '../etc'"),
        (lambda: coordination.post("hive", "a/b", "t", "x"), "author name 'a/b'"),
        (lambda: coordination.post("hive", "a1", "t", ""), "the post is empty"),
        (lambda: coordination.post("../hive", "a1", "t", "x"), "swarm name '../hive'"),
        (lambda: coordination.read("hive", limit=0), "read limit"),
        (lambda: coordination.create_swarm("hive", "again", 3), "already exists"),
        (lambda: coordination.create_swarm("nest", "goal", 0), "maximum size"),
    ]
    for call, message in cases:
        with pytest.raises(UsageError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)
    assert coordination.read("hive")["posts"] == []
    assert [s["name"] for s in coordination.list_swarms()] == ["hive"]


# -- checkpoints (no agent run: see test_coord_e2e.py) ------------------------------------------


def _worker_with_work(service: FleetService, repo: Path, env: dict[str, str]) -> Any:
    worker = service.create_worker(
        CreateRequest(project=str(repo), name="w1", prompt="build", env=env)
    )
    (Path(worker.worktree) / "half.txt").write_text("half done\n")  # not committed
    return service.store.update_worker(
        worker.id, session_id="sess-1", result={"summary": "did the first half"}
    )


def test_a_checkpoint_commits_leftover_work_and_pins_its_commit(
    checkpoints: Checkpoints, service: FleetService, repo: Path, env: dict[str, str]
) -> None:
    worker = _worker_with_work(service, repo, env)
    saved = checkpoints.create(str(repo), "w1", "half", notes="do b next", created_by="boss")
    head = git(Path(worker.worktree), "rev-parse", "HEAD").strip()
    assert saved["commit"] == head
    assert git(Path(worker.worktree), "status", "--porcelain") == ""
    assert "half.txt" in git(repo, "show", "--name-only", "--format=", head)
    assert git(repo, "rev-parse", REF_PREFIX + "half").strip() == head
    assert (saved["branch"], saved["session_id"], saved["agent"]) == (
        "flotilla/w1",
        "sess-1",
        "scripted",
    )
    assert saved["summary"] == "did the first half" and saved["notes"] == "do b next"
    assert checkpoints.list_checkpoints(str(repo)) == [saved]
    assert checkpoints.get(str(repo), "half") == saved


def test_restore_starts_a_new_branch_at_the_commit_and_queues_a_resumed_turn(
    checkpoints: Checkpoints, service: FleetService, repo: Path, env: dict[str, str]
) -> None:
    _worker_with_work(service, repo, env)
    saved = checkpoints.create(str(repo), "w1", "half")
    restored = checkpoints.restore(str(repo), "half", "w2", "finish it", env=env)
    worker = service.store.find_worker(str(repo), "w2")
    assert worker is not None and restored["worker"]["id"] == worker.id
    assert restored["resumed_session"] == "sess-1"
    assert worker.branch == "flotilla/w2" and worker.session_id == "sess-1"
    assert worker.settings["next_turn"] == "prompt"
    assert [p.text for p in service.store.pending_prompts(worker.id)] == ["finish it"]
    assert git(Path(worker.worktree), "rev-parse", "HEAD").strip() == saved["commit"]
    assert (Path(worker.worktree) / "half.txt").read_text() == "half done\n"


def test_restore_without_a_resumable_session_tells_a_new_session_what_it_continues(
    checkpoints: Checkpoints, service: FleetService, repo: Path, env: dict[str, str]
) -> None:
    _worker_with_work(service, repo, env)
    checkpoints.create(str(repo), "w1", "half", notes="do b next")
    other_kind = checkpoints.restore(str(repo), "half", "w2", "finish it", agent="shell", env=env)
    no_resume = checkpoints.restore(str(repo), "half", "w3", "finish it", resume=False, env=env)
    for restored in (other_kind, no_resume):
        assert restored["resumed_session"] is None
        worker = service.store.find_worker(str(repo), restored["worker"]["name"])
        assert worker is not None and worker.session_id is None
        assert "next_turn" not in worker.settings
        assert "did the first half" in worker.prompt and "do b next" in worker.prompt
        assert worker.prompt.endswith("Task:\nfinish it")


def test_bad_checkpoint_input_stores_nothing(
    checkpoints: Checkpoints, service: FleetService, repo: Path, env: dict[str, str]
) -> None:
    worker = _worker_with_work(service, repo, env)
    checkpoints.create(str(repo), "w1", "half")
    (Path(worker.worktree) / "more.txt").write_text("more\n")
    head = git(Path(worker.worktree), "rev-parse", "HEAD").strip()
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: checkpoints.create(str(repo), "w1", "../x"), InvalidName, "checkpoint name"),
        (lambda: checkpoints.create(str(repo), "ghost", "c2"), NotFound, "no worker named"),
        (lambda: checkpoints.create(str(repo), "w1", "half"), UsageError, "already exists"),
        (lambda: checkpoints.restore(str(repo), "nope", "w2"), NotFound, "no checkpoint named"),
        (lambda: checkpoints.restore(str(repo), "half", "../w"), InvalidName, "worker name"),
        (lambda: checkpoints.restore(str(repo), "half", "w1"), UsageError, "already exists"),
        (lambda: checkpoints.restore(str(repo), "../h", "w2"), InvalidName, "checkpoint name"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)
    assert [c["name"] for c in checkpoints.list_checkpoints(str(repo))] == ["half"]
    assert [w.name for w in service.store.list_workers()] == ["w1"]
    # a refused checkpoint commits nothing either
    assert git(Path(worker.worktree), "rev-parse", "HEAD").strip() == head
    assert len(list_worktrees(repo)) == 2


def test_a_checkpoint_whose_commit_is_gone_cannot_be_restored(
    checkpoints: Checkpoints, service: FleetService, repo: Path, env: dict[str, str]
) -> None:
    _worker_with_work(service, repo, env)
    saved = checkpoints.create(str(repo), "w1", "half")
    service.kill(service.get_worker(str(repo), "w1"))
    git(repo, "update-ref", "-d", REF_PREFIX + "half")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "--prune=now", "--quiet")
    with pytest.raises(UsageError, match=f"commit {saved['commit'][:12]} of checkpoint 'half'"):
        checkpoints.restore(str(repo), "half", "w2", env=env)
    assert service.store.list_workers() == []
