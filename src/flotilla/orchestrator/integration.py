"""Bringing workers' work back into the repository: merge, merge queue, overlaps, pull requests.

The glue between the store's worker records and the git operations of
`flotilla.workspace` (merging, merge_queue, conflicts, pullrequest): which
workers qualify, which branch and worktree are theirs, which test command and
timeout the project configures, and in which order a batch is merged. Every
function answers a plain dict, the same for the HTTP API, the CLI's --json
and (later) MCP.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, get_args

from flotilla.domain.errors import NotFound, UsageError
from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.workspace.conflicts import file_conflicts
from flotilla.workspace.merge_queue import QueueItem, QueueOutcome, merge_queue
from flotilla.workspace.merging import (
    check_strategy,
    current_branch,
    merge_branch,
    require_branch,
    save_source_work,
)
from flotilla.workspace.pullrequest import open_pull_request, pr_title_and_body, remote_url

Order = Literal["seq", "tests", "name"]
ORDERS: tuple[str, ...] = get_args(Order)

# One merge at a time per project within this daemon: two merges into the same
# branch would otherwise race for its compare-and-swap and one would fail with
# "changed while merging" for no reason the user could act on.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _project_lock(project: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(os.path.abspath(project), threading.Lock())


def check_order(order: str) -> Order:
    if order not in ORDERS:
        raise UsageError(f"unknown merge order {order!r}: use one of {', '.join(ORDERS)}")
    return order  # type: ignore[return-value]  # narrowed by the membership test


def _worktree(worker: Worker) -> Path | None:
    if worker.worktree and Path(worker.worktree).is_dir():
        return Path(worker.worktree)
    return None


def _require_finished(worker: Worker, what: str) -> None:
    """Refuse a worker whose agent may still be writing to its branch."""
    if not worker.state.is_terminal:
        raise UsageError(
            f"worker {worker.name!r} is {worker.state}: wait until it finishes before you "
            f"{what} it (see `fleet list`)"
        )
    if not worker.branch:
        raise UsageError(f"worker {worker.name!r} has no branch: there is nothing to {what}")


# -- one worker ---------------------------------------------------------------------


def merge_worker(
    service: FleetService,
    project: str,
    name: str,
    *,
    into: str | None = None,
    strategy: str = "merge",
) -> dict[str, Any]:
    """Merge a finished worker's branch into `into` (default: the checked-out branch).

    Uncommitted work in its worktree is committed first. A conflict raises
    MergeConflict (OperationFailed) naming the files, with the target untouched.
    """
    chosen = check_strategy(strategy)
    worker = service.get_worker(project, name)
    _require_finished(worker, "merge")
    with _project_lock(project):
        merged = merge_branch(
            Path(worker.project), worker.branch, into, chosen, worktree=_worktree(worker)
        )
    return {
        "name": worker.name,
        "branch": worker.branch,
        "into": merged.into,
        "strategy": merged.strategy,
        "previous": merged.previous,
        "commit": merged.commit,
        "changed": merged.changed,
        "files": merged.files,
    }


# -- a batch: the merge queue ---------------------------------------------------------


def _tests_rank(worker: Worker) -> tuple[int, int, int]:
    """Passing tests first, then untested, then failing; more passed, fewer failed first."""
    tests = (worker.result or {}).get("tests")
    if not isinstance(tests, Mapping):
        return (1, 0, 0)
    passed = tests.get("passed") if isinstance(tests.get("passed"), int) else 0
    failed = tests.get("failed") if isinstance(tests.get("failed"), int) else 0
    return (0 if tests.get("exit_code") == 0 else 2, -int(passed or 0), int(failed or 0))


def _diff_size(worker: Worker) -> int:
    result = worker.result or {}
    return int(result.get("insertions") or 0) + int(result.get("deletions") or 0)


def order_candidates(workers: Iterable[Worker], order: Order) -> list[Worker]:
    """The merge order: `seq` (creation), `name`, or `tests` (best test results first,
    then the smaller diff, then creation order)."""
    if order == "name":
        return sorted(workers, key=lambda w: w.name)
    if order == "tests":
        return sorted(workers, key=lambda w: (*_tests_rank(w), _diff_size(w), w.seq))
    return sorted(workers, key=lambda w: (w.seq, w.created_at))


def _not_a_candidate(worker: Worker) -> str | None:
    """Why a worker of the batch is left out of the queue, or None if it is a candidate."""
    if worker.state is WorkerState.SUCCEEDED:
        return None if worker.branch else "it has no branch"
    if worker.state is WorkerState.CANCELLED:
        return "it was cancelled"
    if worker.state is WorkerState.FAILED:
        outcome = worker.outcome.value if worker.outcome else "error"
        return f"the worker failed ({outcome}); merge it by name if you want it anyway"
    return f"it is still {worker.state}; merge the batch again when it finishes"


def _outcome_dict(outcome: QueueOutcome) -> dict[str, Any]:
    out = asdict(outcome)
    out["tests"] = asdict(outcome.tests) if outcome.tests else None
    return out


def merge_batch(
    service: FleetService,
    project: str,
    batch: str,
    *,
    order: str = "seq",
    into: str | None = None,
    strategy: str = "merge",
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge a batch's succeeded workers one at a time through the merge queue.

    After each merge the project's `test_command` (if configured) runs on the
    merged tree; a merge that conflicts or breaks the tests is undone and
    reported, and the queue goes on. `env` is the tests' environment (default:
    the daemon's). Workers that are not finished, failed or were cancelled are
    reported as skipped.
    """
    chosen_order = check_order(order)
    chosen = check_strategy(strategy)
    repo = Path(project)
    workers = service.store.list_workers(project=project, batch=batch)
    if not workers:
        raise NotFound(f"no worker in batch {batch!r} in this project (see `fleet list --grouped`)")
    target = into or current_branch(repo)
    require_branch(repo, target)
    config = service.config_for(project).config
    test_command = config.project.test_command.strip() or None
    candidates = order_candidates([w for w in workers if _not_a_candidate(w) is None], chosen_order)
    items = [QueueItem(w.name, w.branch, _worktree(w)) for w in candidates]
    with _project_lock(project):
        outcomes = merge_queue(
            repo,
            items,
            target,
            chosen,
            test_command=test_command,
            env=dict(env) if env else None,
            timeout=float(config.limits.test_timeout_s),
        )
    report = [_outcome_dict(o) for o in outcomes]
    for worker in order_candidates(workers, "seq"):
        reason = _not_a_candidate(worker)
        if reason is not None:
            report.append(
                {
                    "name": worker.name,
                    "status": "skipped",
                    "detail": f"not merged: {reason}",
                    "commit": None,
                    "files": [],
                    "tests": None,
                }
            )
    return {
        "batch": batch,
        "into": target,
        "strategy": chosen,
        "order": chosen_order,
        "test_command": test_command,
        "merged": sum(1 for o in outcomes if o.status == "merged"),
        "outcomes": report,
    }


# -- overlaps before merging ------------------------------------------------------------


def conflicts(service: FleetService, project: str, batch: str | None = None) -> dict[str, Any]:
    """Files changed by two or more running or finished workers (of a batch, or the project).

    Workers without a worktree on disk (not created yet, removed) or cancelled
    are listed under `left_out` with the reason.
    """
    workers = order_candidates(service.store.list_workers(project=project, batch=batch), "seq")
    if batch is not None and not workers:
        raise NotFound(f"no worker in batch {batch!r} in this project (see `fleet list --grouped`)")
    items: list[tuple[str, Path | str, str]] = []
    left_out: list[dict[str, str]] = []
    for worker in workers:
        base = RunSettings.from_dict(worker.settings).base_commit
        worktree = _worktree(worker)
        if worker.state is WorkerState.CANCELLED:
            left_out.append({"name": worker.name, "reason": "cancelled"})
        elif worktree is None:
            left_out.append({"name": worker.name, "reason": "no worktree on disk"})
        elif not base:
            left_out.append({"name": worker.name, "reason": "its base commit is not known yet"})
        else:
            items.append((worker.name, worktree, base))
    found = file_conflicts(Path(project), items)
    return {
        "batch": batch,
        "checked": [name for name, _, _ in items],
        "left_out": left_out,
        "conflicts": [{"path": path, "workers": names} for path, names in found.items()],
    }


# -- pull requests ------------------------------------------------------------------------


def open_pr(
    service: FleetService,
    project: str,
    name: str,
    *,
    base: str | None = None,
    remote: str = "origin",
    draft: bool = False,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Push a finished worker's branch and open a pull request titled from its result.

    Uncommitted work in its worktree is committed first. `env` is where the
    token, GITHUB_API_URL, GITHUB_REPOSITORY and PATH (to find `gh`) are read
    (default: the daemon's environment).
    """
    worker = service.get_worker(project, name)
    _require_finished(worker, "open a pull request for")
    repo = Path(worker.project)
    remote_url(repo, remote)  # no remote: say so before committing or pushing anything
    title, body = pr_title_and_body(worker.result or {})
    save_source_work(repo, worker.branch, _worktree(worker))
    opened = open_pull_request(
        repo,
        worker.branch,
        title,
        body,
        base,
        remote=remote,
        env=dict(env) if env else None,
        draft=draft,
    )
    return {
        "name": worker.name,
        "branch": worker.branch,
        "remote": remote,
        "base": base or current_branch(repo),
        "title": title,
        "url": opened.url,
        "number": opened.number,
        "via": opened.via,
        "draft": draft,
    }
