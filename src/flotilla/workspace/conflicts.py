"""Early warning for parallel workers: which files two or more of them changed.

Answers before anyone merges, from git alone: committed, staged, unstaged and
untracked changes of each worker's worktree relative to its own base commit.
Read-only, so it can run while the agents are still working.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from flotilla.domain.errors import UsageError
from flotilla.workspace.diffing import collect_changes


class ConflictItem(NamedTuple):
    name: str
    worktree: Path
    base_commit: str


def file_conflicts(
    repo: Path, items: Iterable[tuple[str, Path | str, str]]
) -> dict[str, list[str]]:
    """{path: [names of the workers that changed it]} for paths changed by two or more.

    Paths are sorted, and the names keep the order of `items`. `repo` is the
    repository the worktrees belong to (named in the error for a missing one).
    """
    touched: dict[str, list[str]] = {}
    for name, worktree, base in (ConflictItem(n, Path(w), b) for n, w, b in items):
        if not worktree.is_dir():
            raise UsageError(
                f"the worktree of {name!r} is gone ({worktree}, repository {repo}): "
                "leave it out, or merge its branch first"
            )
        for change in collect_changes(worktree, base).files:
            names = touched.setdefault(change.path, [])
            if name not in names:
                names.append(name)
    return {path: names for path, names in sorted(touched.items()) if len(names) > 1}
