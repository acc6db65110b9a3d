from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from workspace_helpers import GitRunner

from flotilla.workspace import (
    BadRef,
    WorktreeConflict,
    WorktreePool,
    collect_changes,
    create_worktree,
    list_worktrees,
    remove_worktree,
)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below `root` except .git, with its content and mode."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".git" or path.is_dir():
            continue
        found[rel] = (path.read_bytes(), stat.S_IMODE(path.lstat().st_mode))
    return found


def test_claim_is_identical_to_a_fresh_worktree(
    repo: Path, tmp_path: Path, wt_root: Path, git: GitRunner
) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    pool = WorktreePool(repo, tmp_path / "pool", base_ref=first)
    assert pool.replenish(2) == 2
    assert pool.replenish(2) == 0
    assert len(pool.ready()) == 2
    # the repository moves on after the pool was filled
    (repo / "README.md").write_text("# second\n")
    (repo / "src" / "app.py").unlink()
    (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo / "run.sh").chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "second")
    # debris in the pool entries (nobody should touch them, but be sure)
    for entry in pool.ready():
        (entry / "stray.txt").write_text("stray\n")
        (entry / "ignored.log").write_text("ignored\n")
        (entry / "README.md").write_text("tampered\n")

    claimed = pool.claim("fleet/claimed", "HEAD", wt_root / "claimed", root=wt_root)
    fresh = create_worktree(repo, wt_root / "fresh", "fleet/fresh", "HEAD", root=wt_root)

    assert pool.hits == 1 and pool.misses == 0
    assert len(pool.ready()) == 1
    assert claimed.path == (wt_root / "claimed").resolve()
    assert claimed.base_commit == fresh.base_commit == git(repo, "rev-parse", "HEAD").strip()
    assert snapshot(claimed.path) == snapshot(fresh.path)
    assert "run.sh" in snapshot(claimed.path)
    assert git(claimed.path, "branch", "--show-current").strip() == "fleet/claimed"
    assert git(claimed.path, "rev-parse", "HEAD").strip() == claimed.base_commit
    assert git(claimed.path, "status", "--porcelain", "--ignored") == ""
    assert not collect_changes(claimed.path, claimed.base_commit).has_changes
    assert "fleet/claimed" not in git(repo, "config", "--list")  # no upstream

    remove_worktree(repo, claimed.path)
    remove_worktree(repo, fresh.path)
    pool.drain()
    assert [e.path for e in list_worktrees(repo)] == [repo]
    assert git(repo, "branch", "--list") == "* main\n"
    assert pool.ready() == []


def test_empty_pool_falls_back_to_a_fresh_worktree(
    repo: Path, tmp_path: Path, wt_root: Path, git: GitRunner
) -> None:
    pool = WorktreePool(repo, tmp_path / "pool")
    info = pool.claim("b", "HEAD", wt_root / "b")
    assert (pool.hits, pool.misses) == (0, 1)
    assert git(info.path, "branch", "--show-current").strip() == "b"


def test_bad_claims_do_not_consume_entries(
    repo: Path, tmp_path: Path, wt_root: Path, git: GitRunner
) -> None:
    pool = WorktreePool(repo, tmp_path / "pool")
    pool.replenish(1)
    git(repo, "branch", "taken")
    with pytest.raises(WorktreeConflict):
        pool.claim("taken", "HEAD", wt_root / "x")
    with pytest.raises(BadRef, match="base ref 'nope'"):
        pool.claim("free", "nope", wt_root / "y")
    assert len(pool.ready()) == 1
    assert not (wt_root / "x").exists()


def test_concurrent_claims_get_distinct_entries(
    repo: Path, tmp_path: Path, wt_root: Path, git: GitRunner
) -> None:
    pool = WorktreePool(repo, tmp_path / "pool")
    pool.replenish(3)
    with ThreadPoolExecutor(3) as executor:
        infos = list(
            executor.map(lambda i: pool.claim(f"c{i}", "HEAD", wt_root / f"c{i}"), range(3))
        )
    assert pool.hits == 3
    assert pool.ready() == []
    for i, info in enumerate(infos):
        assert git(info.path, "branch", "--show-current").strip() == f"c{i}"
    assert len(list_worktrees(repo)) == 4


def test_a_vanished_entry_falls_back(
    repo: Path, tmp_path: Path, wt_root: Path, git: GitRunner
) -> None:
    pool = WorktreePool(repo, tmp_path / "pool")
    pool.replenish(1)
    (entry,) = pool.ready()
    git(repo, "worktree", "remove", "--force", str(entry))  # someone removed it behind our back
    info = pool.claim("v", "HEAD", wt_root / "v")
    assert info.path.is_dir()
    assert pool.misses == 1
