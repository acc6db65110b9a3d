"""A warm pool of pre-made worktrees, so that a launch costs a rename, not a checkout.

Pool entries are detached worktrees in `pool_dir/<id>/`, each made ready by a
marker file `pool_dir/<id>.ready` written after its checkout finished. A claim
takes a marker under a file lock (so two claims never share an entry), moves
the worktree to its destination with `git worktree move`, then creates the
branch at the base and cleans it. Any trouble with an entry falls back to a
fresh `create_worktree`, so the pool only ever makes launches faster.

Pool entries show in `git worktree list`; code looking for orphan worktrees
should skip those under `pool_dir`.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flotilla.counters import count
from flotilla.domain.errors import UsageError
from flotilla.workspace import _git
from flotilla.workspace.adminlock import admin_lock
from flotilla.workspace.errors import GitFailed
from flotilla.workspace.repo import resolve_ref
from flotilla.workspace.worktrees import (
    WorktreeInfo,
    check_new_worktree,
    create_worktree,
    list_worktrees,
    remove_worktree,
)

READY = ".ready"


class WorktreePool:
    def __init__(self, repo: Path, pool_dir: Path, base_ref: str = "HEAD") -> None:
        self.repo = Path(repo)
        self.pool_dir = Path(os.path.abspath(pool_dir))
        self.base_ref = base_ref
        self.hits = 0
        self.misses = 0

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.pool_dir.mkdir(parents=True, exist_ok=True)
        with open(self.pool_dir / name, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ready(self) -> list[Path]:
        """Worktrees ready to be claimed."""
        if not self.pool_dir.is_dir():
            return []
        return sorted(m.with_suffix("") for m in self.pool_dir.glob(f"*{READY}"))

    def replenish(self, n: int) -> int:
        """Make entries until `n` are ready; return how many were made."""
        if n < 0:
            raise UsageError(f"pool size must be 0 or more, not {n}")
        made = 0
        with self._lock(".replenish.lock"):
            base = resolve_ref(self.repo, self.base_ref)
            for _ in range(n - len(self.ready())):
                entry = self.pool_dir / uuid.uuid4().hex[:12]
                # Only the bookkeeping needs the repository's lock; the checkout of the
                # files (what `worktree add` itself runs as its last step) does not.
                add = ["worktree", "add", "--quiet", "--detach", "--no-checkout"]
                with admin_lock(self.repo):
                    _git.run(self.repo, [*add, str(entry), base])
                _git.run(entry, ["reset", "--hard", "--quiet", "--no-recurse-submodules"])
                # The index was written in the same instant as the files, so git
                # would re-hash every "racily clean" file at claim time; rewriting
                # the index now moves that cost off the launch path.
                _git.run(entry, ["update-index", "-q", "--refresh"], ok_codes=(0, 1))
                entry.with_suffix(READY).write_text(base + "\n")
                made += 1
        return made

    def _take(self) -> tuple[Path, str] | None:
        """A ready entry and the commit it was checked out at ("" if not recorded)."""
        with self._lock(".claim.lock"):
            for entry in self.ready():
                marker = entry.with_suffix(READY)
                commit = marker.read_text().strip()
                marker.unlink()
                if entry.is_dir():
                    return entry, commit
                count("workspace.pool_entry_missing")
        return None

    def claim(
        self, branch: str, base_ref: str, dest_path: Path, *, root: Path | None = None
    ) -> WorktreeInfo:
        """Like `create_worktree(repo, dest_path, branch, base_ref, root=root)`, faster."""
        base = resolve_ref(self.repo, base_ref)
        dest = check_new_worktree(self.repo, dest_path, branch, root)
        taken = self._take()
        if taken is None:
            self.misses += 1
            return create_worktree(self.repo, dest, branch, base, root=root)
        entry, commit = taken
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with admin_lock(self.repo):
                _git.run(self.repo, ["worktree", "move", str(entry), str(dest)])
        except GitFailed:
            # e.g. another filesystem, or submodules (git refuses to move those)
            count("workspace.pool_move_failed")
            self._discard(entry)
            self.misses += 1
            return create_worktree(self.repo, dest, branch, base, root=root)
        try:
            if commit == base:
                # Already at the base, files and index untouched since the refill: only
                # the branch is missing. (A checkout would lstat every file to prove it.)
                _git.run(dest, ["branch", "--no-track", "--", branch, base])
                _git.run(dest, ["symbolic-ref", "HEAD", f"refs/heads/{branch}"])
            else:
                _git.run(dest, ["checkout", "--quiet", "--force", "--no-track", "-b", branch, base])
            _git.run(dest, ["clean", "-ffdxq"])
        except GitFailed as exc:
            # "already exists": a concurrent launch owns that branch; leave it alone.
            self._discard(dest, None if "already exists" in exc.stderr else branch)
            raise
        self.hits += 1
        return WorktreeInfo(dest, branch, base)

    def _discard(self, path: Path, branch: str | None = None) -> None:
        try:
            remove_worktree(self.repo, path, delete_branch=branch)
        except (GitFailed, UsageError):
            count("workspace.pool_discard_failed")

    def drain(self) -> None:
        """Remove every pool worktree (ready or not)."""
        with self._lock(".claim.lock"):
            for marker in self.pool_dir.glob(f"*{READY}"):
                marker.unlink()
        for entry in list_worktrees(self.repo):
            if entry.path.resolve().is_relative_to(self.pool_dir.resolve()):
                remove_worktree(self.repo, entry.path)
