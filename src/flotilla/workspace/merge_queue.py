"""The merge queue: finished workers merged one at a time, each kept only if the tests pass.

All merges and test runs happen in one scratch worktree detached at the
target's head. A candidate that conflicts or breaks the tests is undone there
(the scratch worktree goes back to the last good head) and reported; the
target branch only ever moves forward to a head whose tests passed, one
compare-and-swap per good candidate, so an interrupted queue leaves the
target at the last good merge.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flotilla.counters import count
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.domain.worker import TestReport
from flotilla.workspace import _git
from flotilla.workspace.merging import (
    MergeConflict,
    advance_target,
    apply_strategy,
    changed_files,
    check_strategy,
    default_message,
    prepare_target,
    reset_scratch,
    save_source_work,
    scratch_worktree,
)
from flotilla.workspace.repo import branch_exists, is_valid_branch_name
from flotilla.workspace.testing import run_test_command

QueueStatus = Literal["merged", "conflict", "tests_failed", "skipped"]


@dataclass(frozen=True)
class QueueItem:
    name: str  # the worker's (or stage's) name, for the report
    branch: str
    worktree: Path | None = None  # where uncommitted work may be waiting


@dataclass(frozen=True)
class QueueOutcome:
    name: str
    status: QueueStatus
    detail: str  # one line, for people
    commit: str | None = None  # the target's head after this item, when merged
    files: list[str] = field(default_factory=list)  # conflicting files, or files merged
    tests: TestReport | None = None


def _describe(report: TestReport) -> str:
    counts = []
    if report.passed is not None:
        counts.append(f"{report.passed} passed")
    if report.failed is not None:
        counts.append(f"{report.failed} failed")
    extra = f", {', '.join(counts)}" if counts else ""
    return f"exit code {report.exit_code}{extra}"


def merge_queue(
    repo: Path,
    items: Sequence[QueueItem],
    into: str | None = None,
    strategy: str = "merge",
    test_command: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> list[QueueOutcome]:
    """Merge `items` into `into` in the given order; one outcome per item, in that order.

    After each merge `test_command` (if any) runs on the merged tree; a merge
    whose tests fail is undone. Conflicts and failing tests do not stop the
    queue. `env` is the tests' complete environment (default: this process's).
    """
    repo = Path(repo)
    chosen = check_strategy(strategy)
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        raise UsageError("the merge queue names a worker twice: give each worker once")
    target = prepare_target(repo, into)
    test_env = dict(os.environ if env is None else env)
    outcomes: list[QueueOutcome] = []
    with scratch_worktree(repo, target.head) as scratch:
        for item in items:
            if item.branch == target.branch or not (
                is_valid_branch_name(item.branch) and branch_exists(repo, item.branch)
            ):
                why = "is the target" if item.branch == target.branch else "does not exist"
                outcomes.append(QueueOutcome(item.name, "skipped", f"branch {item.branch!r} {why}"))
                continue
            save_source_work(repo, item.branch, item.worktree)
            source = _git.out(repo, ["rev-parse", "--verify", f"refs/heads/{item.branch}"])
            message = default_message(chosen, item.branch, target.branch)
            try:
                new = apply_strategy(
                    scratch, chosen, source, target.head, message, (item.branch, target.branch)
                )
            except MergeConflict as exc:
                count("workspace.merge_queue.conflict")
                outcomes.append(
                    QueueOutcome(
                        item.name,
                        "conflict",
                        f"conflicts in {', '.join(exc.files)}: not merged",
                        files=exc.files,
                    )
                )
                continue
            except OperationFailed as exc:  # e.g. ff-only after the target moved on
                count("workspace.merge_queue.not_merged")
                outcomes.append(QueueOutcome(item.name, "skipped", str(exc)))
                continue
            if new == target.head:
                outcomes.append(
                    QueueOutcome(
                        item.name, "skipped", f"nothing to merge: already in {target.branch!r}"
                    )
                )
                continue
            files = changed_files(repo, target.head, new)
            report = None
            if test_command:
                report = run_test_command(scratch, test_command, test_env, timeout)
                if not report.ok:
                    # Undo: the next candidate starts again from the last good head.
                    reset_scratch(scratch, target.head)
                    outcomes.append(
                        QueueOutcome(
                            item.name,
                            "tests_failed",
                            f"tests failed after the merge ({_describe(report)}): merge undone",
                            files=files,
                            tests=report,
                        )
                    )
                    continue
            target = advance_target(repo, target, new)
            tested = f"; tests passed ({_describe(report)})" if report else ""
            outcomes.append(
                QueueOutcome(
                    item.name,
                    "merged",
                    f"merged as {new[:12]} ({len(files)} files){tested}",
                    commit=new,
                    files=files,
                    tests=report,
                )
            )
    return outcomes
