"""Bringing a worker's branch into a target branch without ever leaving the target half-merged.

Every merge happens in a throwaway worktree detached at the target's head.
Only a finished, successful result reaches the target, by a compare-and-swap
of the branch ref (or, when the target is checked out somewhere and clean, by
a fast-forward of that checkout). So a conflict, a failing test or a crash can
leave a scratch folder behind at worst, never a target with a MERGE_HEAD, a
half-written working tree or a moved ref.

Strategies: `merge` (always a merge commit), `squash` (one new commit),
`rebase` (the worker's commits replayed onto the target, which then
fast-forwards; the worker's own branch is not rewritten, as with GitHub's
"rebase and merge") and `ff-only`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from flotilla.counters import count
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.workspace import _git
from flotilla.workspace.adminlock import admin_lock
from flotilla.workspace.errors import GitFailed
from flotilla.workspace.repo import branch_exists, is_valid_branch_name
from flotilla.workspace.worktrees import (
    commit_all,
    identity_args,
    list_worktrees,
    remove_worktree,
)

Strategy = Literal["merge", "squash", "rebase", "ff-only"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
SAVE_MESSAGE = "flotilla: uncommitted work before merge"


class MergeConflict(OperationFailed):
    """The merge stopped on conflicts; it was aborted and the target left as it was."""

    def __init__(self, message: str, *, files: list[str]) -> None:
        super().__init__(message)
        self.files = files


class CannotFastForward(OperationFailed):
    """`ff-only` was asked but the target has commits the source lacks."""


@dataclass(frozen=True)
class MergeResult:
    commit: str  # the target's head after the merge (== previous when nothing was merged)
    strategy: Strategy
    files: list[str] = field(default_factory=list)  # paths the merge changed on the target
    into: str = ""
    source: str = ""
    previous: str = ""  # the target's head before the merge

    @property
    def changed(self) -> bool:
        return self.commit != self.previous


@dataclass(frozen=True)
class Target:
    """The branch being merged into, its head, and the clean checkout that must follow it."""

    branch: str
    head: str
    checkout: Path | None


def check_strategy(strategy: str) -> Strategy:
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown merge strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    return strategy  # type: ignore[return-value]  # narrowed by the membership test


def require_branch(repo: Path, branch: str) -> str:
    """The sha of local `branch`; UsageError naming it if it does not exist."""
    if not is_valid_branch_name(branch) or not branch_exists(repo, branch):
        raise UsageError(f"branch {branch!r} does not exist in {repo}: check the name")
    return _git.out(repo, ["rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}"])


def current_branch(repo: Path) -> str:
    """The branch checked out in `repo`'s main worktree; UsageError on a detached HEAD."""
    proc = _git.run(repo, ["symbolic-ref", "--quiet", "--short", "HEAD"], ok_codes=(0, 1))
    name = _git.decode(proc.stdout).strip()
    if proc.returncode != 0 or not name:
        raise UsageError(f"{repo} is on a detached HEAD: name the target branch with --into")
    return name


def is_dirty(worktree: Path) -> bool:
    """Uncommitted changes to tracked files (untracked files are git's to protect)."""
    status = _git.out(worktree, ["status", "--porcelain", "--untracked-files=no"])
    return bool(status.strip())


def prepare_target(repo: Path, into: str | None) -> Target:
    """Resolve the target branch and refuse when its checkout holds uncommitted changes."""
    branch = into or current_branch(repo)
    head = require_branch(repo, branch)
    checkout = next((e.path for e in list_worktrees(repo) if e.branch == branch), None)
    if checkout is not None and is_dirty(checkout):
        raise UsageError(
            f"branch {branch!r} is checked out in {checkout} with uncommitted changes: "
            "commit or stash them first, or merge into another branch with --into"
        )
    return Target(branch, head, checkout)


def save_source_work(repo: Path, branch: str, worktree: Path | None) -> None:
    """Commit whatever the worker left uncommitted on `branch`, so the merge loses nothing."""
    path: Path | None = None
    if worktree is not None and Path(worktree).is_dir():
        path = Path(worktree)
        on = _git.run(path, ["symbolic-ref", "--quiet", "--short", "HEAD"], ok_codes=(0, 1))
        if _git.decode(on.stdout).strip() != branch:
            raise UsageError(f"worktree {path} is not on branch {branch!r}: give its own worktree")
    else:
        path = next((e.path for e in list_worktrees(repo) if e.branch == branch), None)
    if path is not None and path.is_dir():
        commit_all(path, SAVE_MESSAGE)


@contextmanager
def scratch_worktree(repo: Path, commit: str) -> Iterator[Path]:
    """A temporary worktree detached at `commit`, removed (with its folder) afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="flotilla-merge-"))
    path = parent / "wt"
    try:
        with admin_lock(repo):
            _git.run(repo, ["worktree", "add", "--quiet", "--detach", str(path), commit])
        yield path
    finally:
        try:
            remove_worktree(repo, path)
        except (GitFailed, UsageError):
            count("workspace.merge_scratch_cleanup")
        shutil.rmtree(parent, ignore_errors=True)


def unmerged_files(worktree: Path) -> list[str]:
    out = _git.run(worktree, ["diff", "--name-only", "--diff-filter=U", "-z"]).stdout
    return sorted({_git.decode(p) for p in out.split(b"\0") if p})


def changed_files(repo: Path, old: str, new: str) -> list[str]:
    if old == new:
        return []
    out = _git.run(repo, ["diff", "--name-only", "--no-renames", "-z", old, new, "--"]).stdout
    return [_git.decode(p) for p in out.split(b"\0") if p]


def _head(worktree: Path) -> str:
    return _git.out(worktree, ["rev-parse", "HEAD"])


def _in_progress(worktree: Path, name: str) -> bool:
    """True while a merge (MERGE_HEAD) or rebase (rebase-merge/) is under way there."""
    path = Path(_git.out(worktree, ["rev-parse", "--git-path", name]))
    return (path if path.is_absolute() else worktree / path).exists()


def reset_scratch(worktree: Path, commit: str) -> None:
    """Back to `commit` with a clean index and tree (scratch worktrees only)."""
    if _in_progress(worktree, "rebase-merge") or _in_progress(worktree, "rebase-apply"):
        _git.run(worktree, ["rebase", "--abort"], ok_codes=(0, 1, 128))
    if _in_progress(worktree, "MERGE_HEAD"):
        _git.run(worktree, ["merge", "--abort"], ok_codes=(0, 1, 128))
    _git.run(worktree, ["checkout", "--quiet", "--force", "--detach", commit])
    _git.run(worktree, ["reset", "--quiet", "--hard", commit])
    # Ignored files (test caches) stay: they are not part of any result.
    _git.run(worktree, ["clean", "-fdq"])


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].removeprefix("fatal: ").removeprefix("error: ") if lines else ""


def tip_conflicts(cwd: Path, ours: str, theirs: str) -> list[str]:
    """Files a merge of the two tips would conflict on (git >= 2.38; [] on older git).

    A rebase stops at its first conflicting commit; this names the rest too.
    """
    proc = _git.run(
        cwd,
        ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs],
        ok_codes=(0, 1, 128, 129),
    )
    if proc.returncode != 1:
        return []
    return [_git.decode(p) for p in proc.stdout.split(b"\0")[1:] if p]


def _failed(scratch: Path, current: str, exc: GitFailed, what: str, source: str) -> OperationFailed:
    """The error for a failed merge step, after putting the scratch worktree back."""
    files = unmerged_files(scratch)
    if files:
        files = sorted({*files, *tip_conflicts(scratch, current, source)})
    reset_scratch(scratch, current)
    if files:
        return MergeConflict(
            f"{what} stopped on conflicts in {', '.join(files)}: merge aborted, "
            "the target is unchanged",
            files=files,
        )
    reason = first_line(exc.stderr) or str(exc)
    return OperationFailed(f"{what} failed: {reason} (the target is unchanged)")


def fast_forward_error(source: str, into: str) -> CannotFastForward:
    return CannotFastForward(
        f"cannot fast-forward {into!r} to {source!r}: {into!r} has commits that "
        f"{source!r} lacks; use --squash, --rebase or a merge instead"
    )


def apply_strategy(
    scratch: Path,
    strategy: Strategy,
    source: str,
    current: str,
    message: str,
    names: tuple[str, str],
) -> str:
    """Merge commit `source` onto `current` in the scratch worktree; the resulting head.

    On failure the scratch worktree is back at `current` and MergeConflict or
    OperationFailed is raised. A result equal to `current` means nothing to merge.
    `names` is (source branch, target branch), for messages.
    """
    ident = identity_args(scratch)
    if _head(scratch) != current:
        reset_scratch(scratch, current)
    if _git.succeeds(scratch, ["merge-base", "--is-ancestor", source, current]):
        return current  # already contained: nothing to merge, whatever the strategy
    what = f"merging {names[0]!r} into {names[1]!r}"
    try:
        if strategy == "ff-only":
            if not _git.succeeds(scratch, ["merge-base", "--is-ancestor", current, source]):
                raise fast_forward_error(*names)
            _git.run(scratch, ["merge", "--quiet", "--ff-only", source])
        elif strategy == "merge":
            _git.run(
                scratch,
                [*ident, "merge", "--quiet", "--no-ff", "--no-verify", "-m", message, source],
            )
        elif strategy == "squash":
            _git.run(scratch, [*ident, "merge", "--quiet", "--squash", source])
            if not _git.succeeds(scratch, ["diff", "--cached", "--quiet"]):
                _git.run(scratch, [*ident, "commit", "--quiet", "--no-verify", "-m", message])
        else:  # rebase: replay the source's commits onto `current`
            _git.run(scratch, ["checkout", "--quiet", "--detach", source])
            _git.run(scratch, [*ident, "rebase", "--quiet", "--no-verify", current])
    except GitFailed as exc:
        raise _failed(scratch, current, exc, what, source) from exc
    return _head(scratch)


def advance_target(repo: Path, target: Target, new: str) -> Target:
    """Move the target branch from `target.head` to `new` (a descendant), atomically.

    A checked-out target moves by a fast-forward of its checkout so that the
    files there follow; otherwise the ref is compare-and-swapped, so a branch
    that moved meanwhile is reported instead of overwritten.
    """
    if new == target.head:
        return target
    ref = f"refs/heads/{target.branch}"
    try:
        if target.checkout is not None:
            if _head(target.checkout) != target.head or is_dirty(target.checkout):
                raise OperationFailed(
                    f"branch {target.branch!r} changed in {target.checkout} while merging: "
                    "try again"
                )
            _git.run(target.checkout, ["merge", "--quiet", "--ff-only", new])
        else:
            _git.run(
                repo,
                [
                    "update-ref",
                    "-m",
                    f"flotilla: merge into {target.branch}",
                    ref,
                    new,
                    target.head,
                ],
            )
    except GitFailed as exc:
        raise OperationFailed(
            f"could not move branch {target.branch!r} to the merge result: "
            f"{first_line(exc.stderr) or exc} (the branch is unchanged)"
        ) from exc
    return Target(target.branch, new, target.checkout)


def default_message(strategy: Strategy, source: str, into: str) -> str:
    if strategy == "squash":
        return f"Squash branch '{source}' into {into}"
    return f"Merge branch '{source}' into {into}"


def merge_branch(
    repo: Path,
    source_branch: str,
    into: str | None = None,
    strategy: str = "merge",
    worktree: Path | None = None,
    message: str | None = None,
) -> MergeResult:
    """Merge `source_branch` into `into` (default: the main worktree's current branch).

    Uncommitted work in the source's worktree (`worktree`, or wherever the
    branch is checked out) is committed first. A conflict raises MergeConflict
    listing the files, with the target exactly as it was.
    """
    repo = Path(repo)
    chosen = check_strategy(strategy)
    source_head = require_branch(repo, source_branch)
    target = prepare_target(repo, into)
    if target.branch == source_branch:
        raise UsageError(f"cannot merge branch {source_branch!r} into itself: choose --into")
    save_source_work(repo, source_branch, worktree)
    source_head = require_branch(repo, source_branch)
    names = (source_branch, target.branch)
    text = message or default_message(chosen, *names)
    if _git.succeeds(repo, ["merge-base", "--is-ancestor", source_head, target.head]):
        new = target.head  # already merged
    elif chosen == "ff-only":
        # A fast-forward writes no files: no scratch worktree needed.
        if not _git.succeeds(repo, ["merge-base", "--is-ancestor", target.head, source_head]):
            raise fast_forward_error(*names)
        new = source_head
    else:
        with scratch_worktree(repo, target.head) as scratch:
            new = apply_strategy(scratch, chosen, source_head, target.head, text, names)
    advance_target(repo, target, new)
    return MergeResult(
        commit=new,
        strategy=chosen,
        files=changed_files(repo, target.head, new),
        into=target.branch,
        source=source_branch,
        previous=target.head,
    )
