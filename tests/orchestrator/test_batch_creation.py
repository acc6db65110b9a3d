"""Creating workers in batches, from the warm worktree pool, and waking the supervisor.

Real git repositories, a real SQLite store, real agent processes (the shell executor).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.domain.errors import UsageError
from flotilla.domain.states import WorkerState
from flotilla.orchestrator.creation import CreateRequest
from flotilla.orchestrator.pooling import pool_dir_for, sweep_unready
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.supervisor import Supervisor
from flotilla.store import open_store
from flotilla.store.base import Store
from flotilla.workspace import WorktreePool, list_worktrees

GIT_ID = {
    "GIT_AUTHOR_NAME": "Flotilla Test",
    "GIT_AUTHOR_EMAIL": "test@flotilla.invalid",
    "GIT_COMMITTER_NAME": "Flotilla Test",
    "GIT_COMMITTER_EMAIL": "test@flotilla.invalid",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ID}
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    )
    return proc.stdout


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    return {
        **base,
        **GIT_ID,
        "FLOTILLA_HOME": str(tmp_path / "home"),
        "FLOTILLA_USER_CONFIG": str(tmp_path / "no-user-config.toml"),
    }


def make_project(root: Path, pool: int, command: str = "echo done") -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(5):
        (repo / "src" / f"m{i}.py").write_text(f"X = {i}\n")
    (repo / ".flotilla").mkdir()
    (repo / ".flotilla" / "config.toml").write_text(
        '[project]\ndefault_agent = "shell"\n'
        f"[limits]\nmax_concurrent = 8\nworktree_pool = {pool}\n"
        f"[agents.shell]\ncommand = {command!r}\n"
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def requests(repo: Path, env: dict[str, str], *names: str) -> list[CreateRequest]:
    return [
        CreateRequest(project=str(repo), name=n, prompt="do it", batch="b1", env=env) for n in names
    ]


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_batch_is_created_in_request_order_from_the_pool(
    tmp_path: Path, env: dict[str, str], store: Store
) -> None:
    repo = make_project(tmp_path, pool=3)
    service = FleetService(store, tmp_path / "home")
    loaded = service.config_for(str(repo), env)
    pool = service.pools.pool(loaded, repo)
    assert pool is not None
    pool.replenish(3)
    outcome = service.create_workers(requests(repo, env, "a", "b", "c", "d", "e"))
    assert outcome.failed == []
    assert [w.name for w in outcome.created] == ["a", "b", "c", "d", "e"]
    seqs = [w.seq for w in outcome.created]
    assert seqs == sorted(seqs)
    assert (pool.hits, pool.misses) == (3, 2)
    for worker in outcome.created:
        assert worker.worktree and Path(worker.worktree).is_dir()
        assert git(Path(worker.worktree), "branch", "--show-current").strip() == worker.branch
        assert git(Path(worker.worktree), "status", "--porcelain") == ""
    # the pool fills up again in the background
    wait_for(lambda: len(pool.ready()) == 3)
    assert pool.pool_dir == pool_dir_for(loaded, repo)


def test_without_a_pool_no_pool_folder_is_made(
    tmp_path: Path, env: dict[str, str], store: Store
) -> None:
    repo = make_project(tmp_path, pool=0)
    service = FleetService(store, tmp_path / "home")
    outcome = service.create_workers(requests(repo, env, "a", "b"))
    assert [w.name for w in outcome.created] == ["a", "b"]
    loaded = service.config_for(str(repo), env)
    assert service.pools.pool(loaded, repo) is None
    assert not pool_dir_for(loaded, repo).exists()


@pytest.mark.parametrize(
    ("names", "base", "message"),
    [
        (("a", "b", "a"), None, "names 'a' twice"),
        (("a", "b"), "no-such-ref", "no-such-ref"),
        (("a", "Bad Name"), None, "Bad Name"),
    ],
)
def test_bad_input_in_a_batch_creates_nothing(
    tmp_path: Path,
    env: dict[str, str],
    store: Store,
    names: tuple[str, ...],
    base: str | None,
    message: str,
) -> None:
    repo = make_project(tmp_path, pool=0)
    service = FleetService(store, tmp_path / "home")
    batch = requests(repo, env, *names)
    for request in batch:
        request.base_ref = base
    with pytest.raises(UsageError, match=message):
        service.create_workers(batch)
    assert store.list_workers() == []
    assert len(list_worktrees(repo)) == 1


def test_one_failing_worktree_does_not_stop_the_others(
    tmp_path: Path, env: dict[str, str], store: Store
) -> None:
    repo = make_project(tmp_path, pool=0)
    git(repo, "branch", "flotilla/b")  # a branch no worker owns: b's worktree cannot be made
    service = FleetService(store, tmp_path / "home")
    outcome = service.create_workers(requests(repo, env, "a", "b", "c"))
    assert [w.name for w in outcome.created] == ["a", "c"]
    assert [name for name, _ in outcome.failed] == ["b"]
    assert "flotilla/b" in outcome.failed[0][1]
    assert sorted(w.name for w in store.list_workers()) == ["a", "c"]
    assert git(repo, "rev-parse", "--verify", "flotilla/b").strip()  # not deleted


def test_unready_pool_entries_are_swept(tmp_path: Path, env: dict[str, str]) -> None:
    repo = make_project(tmp_path, pool=0)
    pool = WorktreePool(repo, tmp_path / "pool")
    pool.replenish(1)
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "pool" / "deadbeef"), "HEAD")
    assert sweep_unready(pool, min_age_s=3600) == []  # too young: may be in the making
    removed = sweep_unready(pool, min_age_s=0)
    assert [p.name for p in removed] == ["deadbeef"]
    assert len(pool.ready()) == 1
    assert len(list_worktrees(repo)) == 2


async def test_supervisor_is_woken_by_launches_and_exits_not_its_timer(
    tmp_path: Path, env: dict[str, str], store: Store
) -> None:
    repo = make_project(tmp_path, pool=0, command="echo done > out.txt")
    home = tmp_path / "home"
    supervisor = Supervisor(store, home, max_concurrent=lambda _: 8, tick_s=60)
    service = FleetService(store, home, on_change=supervisor.notify)
    stop = asyncio.Event()
    loop = asyncio.create_task(supervisor.run(stop))
    try:
        await asyncio.sleep(0.1)  # the first (full) pass is over: from now on, only wake-ups
        started = time.monotonic()
        await asyncio.to_thread(service.create_workers, requests(repo, env, "a", "b"))
        for _ in range(200):
            workers = store.list_workers()
            if all(w.state is WorkerState.SUCCEEDED for w in workers):
                break
            await asyncio.sleep(0.05)
        assert [w.state for w in store.list_workers()] == [WorkerState.SUCCEEDED] * 2
        assert time.monotonic() - started < 10  # far less than the 60 s periodic pass
        assert all(w.result and w.result["files"] for w in store.list_workers())
    finally:
        stop.set()
        supervisor.wake.set()
        await asyncio.wait_for(loop, 30)
