"""Worktree bookkeeping from many threads at once: git dies on a half-written admin
folder of a concurrent `worktree add` unless Flotilla's commands take turns."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workspace_helpers import GitRunner

from flotilla.workspace import WorktreePool, create_worktree, list_worktrees, remove_worktree
from flotilla.workspace.adminlock import LOCK_NAME, admin_lock


def test_concurrent_adds_claims_refills_and_removals_all_succeed(
    repo: Path, tmp_path: Path, wt_root: Path, git: GitRunner
) -> None:
    pool = WorktreePool(repo, wt_root / ".pool")
    pool.replenish(6)
    refill = threading.Thread(target=pool.replenish, args=(12,))
    refill.start()

    def make(i: int) -> Path:
        if i % 2:
            info = pool.claim(f"w{i}", "HEAD", wt_root / f"w{i}")
        else:
            info = create_worktree(repo, wt_root / f"w{i}", f"w{i}", "HEAD")
        list_worktrees(repo)
        if i % 3 == 0:
            remove_worktree(repo, info.path)
        return info.path

    stop = threading.Event()

    def keep_listing() -> None:
        for _ in range(2000):  # bounded; normally ends long before
            if stop.is_set():
                return
            list_worktrees(repo)

    lister = threading.Thread(target=keep_listing)
    lister.start()
    try:
        with ThreadPoolExecutor(8) as executor:
            paths = list(executor.map(make, range(48)))
    finally:
        stop.set()
        lister.join(60)
        refill.join(60)
    kept = {p for i, p in enumerate(paths) if i % 3}
    listed = {e.path.resolve() for e in list_worktrees(repo)}
    assert {p.resolve() for p in kept} <= listed
    for i, path in enumerate(paths):
        if i % 3:
            assert git(path, "branch", "--show-current").strip() == f"w{i}"
            assert (path / "README.md").read_text() == "# demo\n"
        else:
            assert not path.exists()


def test_lock_is_reentrant_and_excludes_other_threads(repo: Path) -> None:
    order: list[str] = []
    with admin_lock(repo), admin_lock(repo / "src" / ".."):  # re-entered, named otherwise
        other = threading.Thread(target=lambda: _take(repo, order))
        other.start()
        other.join(0.3)
        assert other.is_alive()  # blocked while this thread holds the lock
        order.append("first")
    other.join(10)
    assert order == ["first", "second"]
    assert (repo / ".git" / LOCK_NAME).exists()


def _take(repo: Path, order: list[str]) -> None:
    with admin_lock(repo):
        order.append("second")
