"""Worktrees: one per worker, on its own branch, made and removed without leaving debris."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from flotilla.counters import count
from flotilla.domain.errors import UsageError
from flotilla.workspace import _git
from flotilla.workspace.adminlock import admin_lock
from flotilla.workspace.errors import GitFailed, PathEscape, WorktreeConflict
from flotilla.workspace.repo import branch_exists, is_valid_branch_name, resolve_ref

FALLBACK_IDENTITY = ("Flotilla", "flotilla@localhost")


@dataclass(frozen=True)
class WorktreeInfo:
    path: Path
    branch: str
    base_commit: str


class WorktreeEntry(NamedTuple):
    path: Path
    branch: str | None  # None: detached HEAD (or bare)
    head: str | None  # None: no commit yet


def check_inside(path: Path, root: Path) -> Path:
    """The absolute `path`, if it lies strictly inside `root`; PathEscape otherwise."""
    resolved = Path(os.path.abspath(path)).resolve()
    base = Path(os.path.abspath(root)).resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise PathEscape(f"worktree path {path} is outside the worktree folder {root}")
    return resolved


def check_new_worktree(repo: Path, path: Path, branch: str, root: Path | None) -> Path:
    """Validate a (path, branch) pair for a new worktree; return the absolute path."""
    if ".." in Path(path).parts:
        raise PathEscape(f"worktree path {path} contains '..': give a plain path")
    dest = check_inside(path, root) if root is not None else Path(os.path.abspath(path))
    if not is_valid_branch_name(branch):
        raise UsageError(
            f"{branch!r} is not a valid git branch name: use letters, digits, '-', '/'"
        )
    if branch_exists(repo, branch):
        raise WorktreeConflict(
            f"branch {branch!r} already exists in {repo}: choose another name "
            f"or delete it with `git branch -D {branch}`"
        )
    if dest.exists() or dest.is_symlink():
        raise WorktreeConflict(
            f"worktree path already exists: {dest} (remove it or choose another)"
        )
    return dest


def create_worktree(
    repo: Path, path: Path, branch: str, base_ref: str, *, root: Path | None = None
) -> WorktreeInfo:
    """A new worktree at `path` on a new `branch` starting at `base_ref`.

    With `root`, `path` must lie inside it. On failure nothing is left behind.
    """
    repo = Path(repo)
    base = resolve_ref(repo, base_ref)
    dest = check_new_worktree(repo, path, branch, root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with admin_lock(repo):
            _git.run(
                repo, ["worktree", "add", "--quiet", "--no-track", "-b", branch, str(dest), base]
            )
    except GitFailed as exc:
        # "already exists": a concurrent launch won the name; its branch is not ours to delete.
        if "already exists" not in exc.stderr:
            _undo_failed_add(repo, dest, branch)
        raise
    return WorktreeInfo(dest, branch, base)


def _undo_failed_add(repo: Path, dest: Path, branch: str) -> None:
    try:
        remove_worktree(repo, dest, delete_branch=branch, keep_branch=False)
    except (GitFailed, UsageError):
        count("workspace.undo_failed_add")


def list_worktrees(repo: Path) -> list[WorktreeEntry]:
    """Every worktree of the repository, the main one first."""
    with admin_lock(repo):
        listing = _git.decode(_git.run(repo, ["worktree", "list", "--porcelain", "-z"]).stdout)
    entries = []
    for record in listing.split("\0\0"):
        fields = {}
        for line in record.strip("\0").split("\0"):
            key, _, value = line.partition(" ")
            fields[key] = value
        if "worktree" not in fields:
            continue
        branch = fields.get("branch")
        entries.append(
            WorktreeEntry(
                Path(fields["worktree"]),
                branch.removeprefix("refs/heads/") if branch else None,
                fields.get("HEAD") or None,
            )
        )
    return entries


def find_entry(repo: Path, path: Path) -> tuple[WorktreeEntry | None, WorktreeEntry]:
    """(the entry registered at `path` or None, the main worktree's entry)."""
    entries = list_worktrees(repo)
    target = Path(os.path.abspath(path)).resolve()
    match = next((e for e in entries if e.path.resolve() == target), None)
    return match, entries[0]


def remove_worktree(
    repo: Path,
    path: Path,
    *,
    delete_branch: str | None = None,
    keep_branch: bool = False,
    commit_message: str = "flotilla: uncommitted work at removal",
) -> None:
    """Remove the worktree at `path` (forcefully), prune, and delete its branch unless kept.

    `delete_branch` names the branch when the worktree is already gone; by
    default it is the branch checked out there. With `keep_branch`, uncommitted
    work is committed to the branch first so that nothing is lost. Idempotent:
    a missing worktree or branch is not an error.
    """
    repo = Path(repo)
    dest = Path(os.path.abspath(path))
    with admin_lock(repo):
        entry, main = find_entry(repo, dest)
        if entry is not None and entry == main:
            raise UsageError(f"refusing to remove the main worktree {dest}")
        if entry is None and dest.exists():
            raise UsageError(f"{dest} is not a worktree of {repo}: refusing to delete it")
        branch = delete_branch or (entry.branch if entry else None)
        if entry is not None and dest.exists():
            if keep_branch and entry.branch:
                commit_all(dest, commit_message)
            _git.run(repo, ["worktree", "remove", "--force", "--force", str(dest)])
        _git.run(repo, ["worktree", "prune"])
        if branch and not keep_branch and branch_exists(repo, branch):
            _git.run(repo, ["branch", "-D", "--quiet", branch])


def identity_args(cwd: Path) -> list[str]:
    """`-c user.*` options when no identity is configured, so that commits never fail on it."""
    if os.environ.get("GIT_AUTHOR_EMAIL") and os.environ.get("GIT_COMMITTER_EMAIL"):
        return []
    if os.environ.get("EMAIL") or _git.succeeds(cwd, ["config", "--get", "user.email"]):
        return []
    name, email = FALLBACK_IDENTITY
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def commit_all(worktree: Path, message: str, *, verify: bool = False) -> str | None:
    """Commit every change in `worktree`, untracked files included; the new sha, or None.

    Hooks are skipped unless `verify`: this commit preserves work, it is not a gate.
    """
    worktree = Path(worktree)
    _git.run(worktree, ["add", "--all"])
    if _git.succeeds(worktree, ["diff", "--cached", "--quiet"]):
        return None
    args = [*identity_args(worktree), "commit", "--quiet", "-m", message]
    if not verify:
        args.append("--no-verify")
    _git.run(worktree, args)
    return _git.out(worktree, ["rev-parse", "HEAD"])
