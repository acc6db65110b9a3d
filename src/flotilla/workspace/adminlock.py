"""One lock per repository around git's worktree bookkeeping.

While it adds, moves, lists or removes worktrees, and before it deletes a
branch, git reads the admin folder of every worktree (`.git/worktrees/<id>/`),
and it dies ("failed to read .../commondir") on one that a concurrent
`git worktree add` is still writing. Flotilla makes worktrees from several
threads (a batch, the pool refill) and processes, so its commands that touch
that bookkeeping take this lock in turn. The lock is a `flock` on a file in the
repository's common git folder, so it holds across threads and processes alike;
it is re-entrant within a thread. The slow part of a new worktree, checking out
its files, can run outside the lock (see `worktrees.populate`).
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flotilla.workspace import _git

LOCK_NAME = "flotilla-worktrees.lock"

_held = threading.local()


@functools.lru_cache(maxsize=256)
def _lock_path(repo: str) -> Path:
    dot_git = Path(repo) / ".git"
    if dot_git.is_dir():
        return dot_git / LOCK_NAME
    common = _git.out(Path(repo), ["rev-parse", "--path-format=absolute", "--git-common-dir"])
    return Path(common) / LOCK_NAME


@contextmanager
def admin_lock(repo: Path) -> Iterator[None]:
    """Hold the repository's worktree lock (re-entrant within one thread)."""
    path = _lock_path(os.path.abspath(repo))
    key = str(path)  # one key per lock file, however the repository was named
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        depth[key] = 1
        try:
            yield
        finally:
            depth[key] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)
