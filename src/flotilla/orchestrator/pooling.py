"""The daemon's warm worktree pools: one per project with `limits.worktree_pool` > 0.

A launch claims a pre-made worktree (a rename and a branch switch) instead of
checking out the whole tree. Refilling happens in one background thread per
pool at the lowest CPU priority (its git children inherit it), so a refill
hardly slows the agents or the launches it is preparing for.

The pool lives in `<worktree root>/.pool`: on the same filesystem as the
worktrees (a claim is a rename), and a name no worker can take (worker names
start with a letter or digit). Its entries are detached worktrees, so they
show in `git worktree list`; orphan cleanup must skip paths under `pool_dir_for`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from flotilla.config.loader import LoadedConfig
from flotilla.counters import count
from flotilla.domain.errors import FlotillaError
from flotilla.workspace.pool import READY, WorktreePool
from flotilla.workspace.worktrees import list_worktrees, remove_worktree

log = logging.getLogger(__name__)

POOL_FOLDER = ".pool"
REFILL_NICE = 19
# An entry without its ready marker is a refill that died midway (the daemon was
# stopped): removed when this old, since a refill in progress holds the lock anyway.
STALE_ENTRY_S = 60.0
QUIET_S = 1.0  # a refill waits until no launch claimed from the pool for this long
REFILL_DEADLINE_S = 3600.0  # a refill that is not done by then stops; the next launch resumes it

_Key = tuple[Path, Path, str]  # repository, pool folder, base ref


def worktree_root(loaded: LoadedConfig, repo: Path) -> Path:
    """Where the project's worktrees go (the same rule as worker creation)."""
    return loaded.worktree_root or repo / ".flotilla-worktrees"


def pool_dir_for(loaded: LoadedConfig, repo: Path) -> Path:
    return worktree_root(loaded, repo) / POOL_FOLDER


def pool_for(loaded: LoadedConfig, repo: Path | None = None) -> WorktreePool:
    """The project's pool (whatever its configured size), e.g. to fill it by hand."""
    project = repo or loaded.repo
    if project is None:
        raise FlotillaError("a worktree pool needs a repository")
    return WorktreePool(project, pool_dir_for(loaded, project), loaded.config.project.base_ref)


class PoolKeeper:
    """The pools of one daemon, and the threads that refill them."""

    def __init__(self, nice: int = REFILL_NICE) -> None:
        self._nice = nice
        self._lock = threading.Lock()
        self._pools: dict[_Key, WorktreePool] = {}
        self._wanted: dict[_Key, int] = {}
        self._refilling: set[_Key] = set()
        self._swept: set[_Key] = set()
        self._last_claim: dict[_Key, float] = {}
        self.quiet_s = QUIET_S

    def pool(self, loaded: LoadedConfig, repo: Path) -> WorktreePool | None:
        """The pool to claim from, or None when the project has none configured."""
        found = self._get(loaded, repo)
        if found is None:
            return None
        with self._lock:
            self._last_claim[found[0]] = time.monotonic()
        return found[1]

    def _get(self, loaded: LoadedConfig, repo: Path) -> tuple[_Key, WorktreePool] | None:
        size = loaded.config.limits.worktree_pool
        if size <= 0:
            return None
        key = (repo, pool_dir_for(loaded, repo), loaded.config.project.base_ref)
        with self._lock:
            self._wanted[key] = size
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = WorktreePool(*key)
            return key, pool

    def refill_later(self, loaded: LoadedConfig, repo: Path) -> threading.Thread | None:
        """Top the project's pool up in the background; None if one is already at it."""
        found = self._get(loaded, repo)
        if found is None:
            return None
        key, pool = found
        with self._lock:
            if key in self._refilling:
                return None
            self._refilling.add(key)
        thread = threading.Thread(
            target=self._refill, args=(key, pool), name=f"pool-refill-{repo.name}", daemon=True
        )
        thread.start()
        return thread

    def _refill(self, key: _Key, pool: WorktreePool) -> None:
        try:
            self._lower_priority()
            if key not in self._swept:
                self._swept.add(key)
                sweep_unready(pool)
            # One entry at a time, each after launches have paused for quiet_s: a refill
            # holds the repository's worktree lock for a moment per entry, and launches
            # that queue behind a low-priority holder would wait long.
            deadline = time.monotonic() + REFILL_DEADLINE_S
            while time.monotonic() < deadline:
                with self._lock:
                    wanted = self._wanted.get(key, 0)
                    quiet_at = self._last_claim.get(key, 0.0) + self.quiet_s
                if time.monotonic() < quiet_at:
                    time.sleep(min(self.quiet_s, quiet_at - time.monotonic()))
                    continue
                ready = len(pool.ready())
                if ready >= wanted or pool.replenish(ready + 1) == 0:
                    break
        except FlotillaError:
            count("orchestrator.pool_refill_failed")
            log.exception("refilling the worktree pool of %s failed", pool.repo)
        finally:
            with self._lock:
                self._refilling.discard(key)

    def _lower_priority(self) -> None:
        """Nice this thread; the git processes it starts inherit the value. Not
        SCHED_IDLE: a refill briefly holds the repository's worktree lock, and an idle-class
        holder could be starved for as long as the CPUs are busy, stalling every launch."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
        except OSError:
            count("orchestrator.pool_nice_failed")


def sweep_unready(pool: WorktreePool, min_age_s: float = STALE_ENTRY_S) -> list[Path]:
    """Remove pool entries that never got their ready marker (a refill cut short)."""
    removed: list[Path] = []
    if not pool.pool_dir.is_dir():
        return removed
    now = time.time()
    root = pool.pool_dir.resolve()
    for entry in list_worktrees(pool.repo):
        path = entry.path.resolve()
        if path.parent != root or path.with_suffix(READY).exists():
            continue
        try:
            if now - path.stat().st_mtime < min_age_s:
                continue
            remove_worktree(pool.repo, path)
        except (OSError, FlotillaError):
            count("orchestrator.pool_sweep_failed")
            continue
        count("orchestrator.pool_unready_removed")
        removed.append(path)
    return removed
