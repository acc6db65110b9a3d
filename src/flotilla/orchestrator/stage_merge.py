"""`fleet merge STAGE`: bring one workflow stage's result into a branch.

A stage's result is what the workflow engine's own `--merge` takes from it:
a ranked stage's winner only, otherwise each worker of its current attempt
that changed files, one per branch. An `inherit` stage shares its upstream's
branch and worktree, so merging either brings that branch as it stands. Each
target is merged with `integration.merge_worker`, so merging a stage is
exactly the worker merges a user could type by hand.

`merge_ref` is what the CLI calls: a worker's name wins over a stage's; a
name with a `/` is WORKFLOW/STAGE (worker names never contain one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.counters import count
from flotilla.domain.errors import NotFound, OperationFailed, UsageError
from flotilla.domain.worker import Worker
from flotilla.domain.workflow import StageState
from flotilla.orchestrator import integration
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.workflow_context import Deps, RunContext
from flotilla.orchestrator.workflow_engine import engine_for
from flotilla.workspace.merging import MergeConflict, check_strategy, prepare_target

WAITING = (StageState.PENDING, StageState.READY, StageState.RUNNING)
WORKING = (StageState.READY, StageState.RUNNING)  # about to write, or writing, in a worktree


@dataclass(frozen=True)
class Target:
    """One branch to merge: the stage's worker that owns it."""

    stage: str
    worker: Worker


def _stage_names(spec: dict[str, Any]) -> list[str]:
    return [str(s.get("name")) for s in spec.get("stages", ()) if isinstance(s, dict)]


def resolve(service: FleetService, project: str, ref: str) -> tuple[str, str]:
    """(workflow id, stage) named by `STAGE` (the newest workflow that has one) or
    `WORKFLOW/STAGE` (an id or a unique prefix of one)."""
    if "/" in ref:
        wf_ref, _, stage = ref.partition("/")
        if not wf_ref or not stage or "/" in stage:
            raise UsageError(f"{ref!r} is not WORKFLOW/STAGE: give e.g. 3f2a/implement")
        wf = engine_for(service).find(wf_ref, project)
        names = _stage_names(wf.spec)
        if stage not in names:
            raise NotFound(
                f"workflow {wf.id} has no stage {stage!r}: its stages are {', '.join(names)}"
            )
        return wf.id, stage
    deps = Deps.of(service)
    for wf in reversed(deps.workflows.list_workflows(project)):  # newest first
        if ref in _stage_names(wf.spec):
            return wf.id, ref
    raise NotFound(
        f"no worker or workflow stage named {ref!r} in this project: see `fleet list` for "
        "workers, `fleet workflow status ID` for a workflow's stages"
    )


def _first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def _require_succeeded(ctx: RunContext, stage: str) -> None:
    row = ctx.stages[stage]
    if row.state is StageState.SUCCEEDED:
        return
    where = f"stage {stage!r} of workflow {ctx.wf.id}"
    see = f"see `fleet workflow status {ctx.wf.id}`"
    if row.state in WAITING:
        raise UsageError(f"{where} is {row.state}: merge it once it has succeeded ({see})")
    reason = _first_line(row.error)
    reason = f" ({reason})" if reason else ""
    raise UsageError(
        f"{where} is {row.state}{reason}: only a succeeded stage can be merged ({see})"
    )


def stage_targets(service: FleetService, ctx: RunContext, stage: str) -> list[Target]:
    """The workers whose branches are `stage`'s result (see the module docstring)."""
    row = ctx.stages[stage]
    rows = ctx.rows(stage)
    if ctx.stage_spec(stage).rank:
        rows = [r for r in rows if r.name == row.winner]
    chosen: dict[str, Target] = {}
    for planned in rows:
        if not (planned.result or {}).get("files"):
            continue
        worker = ctx.worker_of(planned, service.store)
        if worker is None:
            raise UsageError(
                f"worker {planned.name!r} of stage {stage!r} no longer exists (the workflow was "
                "cleaned up?): its branch, if kept, can be merged with git"
            )
        chosen.pop(worker.branch, None)  # keep the last worker on a shared branch
        chosen[worker.branch] = Target(stage, worker)
    return list(chosen.values())


def _branch_root(ctx: RunContext, stage: str) -> str:
    """The stage whose worktree and branch `stage` works in (itself unless it inherits)."""
    spec = ctx.stage_spec(stage)
    seen = {spec.name}
    while spec.worktree == "inherit" and spec.inherit_from and spec.inherit_from not in seen:
        spec = ctx.stage_spec(spec.inherit_from)
        seen.add(spec.name)
    return spec.name


def _require_idle(ctx: RunContext, stage: str, targets: list[Target]) -> None:
    """Refuse while another stage works on the same branch: a merge commits what is
    in the worktree, and an agent there may be half-way through writing it. The
    stages are checked as well as the workers, because a running stage's workers
    are named before they are made."""
    root = _branch_root(ctx, stage)
    for name, row in ctx.stages.items():
        if name != stage and row.state in WORKING and _branch_root(ctx, name) == root:
            raise UsageError(
                f"stage {name!r} of workflow {ctx.wf.id} is {row.state} on the branch of stage "
                f"{stage!r}: merge it once that stage has ended"
            )
    for target in targets:
        for other in ctx.workers.values():
            if other.branch == target.worker.branch and not other.state.is_terminal:
                raise UsageError(
                    f"branch {target.worker.branch!r} of stage {stage!r} is still in use by "
                    f"{other.name} ({other.state}): merge it once that worker has finished"
                )


def merge_stage(
    service: FleetService,
    project: str,
    ref: str,
    *,
    into: str | None = None,
    strategy: str = "merge",
) -> dict[str, Any]:
    """Merge a succeeded stage's result workers, one at a time, into `into`.

    Everything that is bad input is refused before the first merge. A merge
    that conflicts or cannot fast-forward leaves the target as it was, is
    reported under `failed`, and the next worker is still merged (as with
    `merge --all`).
    """
    chosen = check_strategy(strategy)
    workflow_id, stage = resolve(service, project, ref)
    ctx = RunContext.load(Deps.of(service), workflow_id)
    _require_succeeded(ctx, stage)
    targets = stage_targets(service, ctx, stage)
    _require_idle(ctx, stage, targets)
    branch = prepare_target(Path(ctx.wf.project), into).branch  # exists, and a clean checkout
    merged: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for target in targets:
        try:
            merged.append(
                integration.merge_worker(
                    service, project, target.worker.name, into=branch, strategy=chosen
                )
            )
        except OperationFailed as exc:
            count("stage_merge.worker_not_merged")
            failed.append(
                {
                    "name": target.worker.name,
                    "branch": target.worker.branch,
                    "error": str(exc),
                    "files": exc.files if isinstance(exc, MergeConflict) else [],
                }
            )
    return {
        "kind": "stage",
        "workflow": workflow_id,
        "stage": stage,
        "into": branch,
        "strategy": chosen,
        "targets": [t.worker.name for t in targets],
        "merged": merged,
        "failed": failed,
        "changed": any(m["changed"] for m in merged),
    }


def merge_ref(
    service: FleetService,
    project: str,
    ref: str,
    *,
    into: str | None = None,
    strategy: str = "merge",
) -> dict[str, Any]:
    """`fleet merge REF`: the worker named REF if there is one, else the stage REF names."""
    if not ref.strip():
        raise UsageError("name a worker, a stage or WORKFLOW/STAGE to merge")
    if "/" not in ref and service.store.find_worker(project, ref) is not None:
        merged = integration.merge_worker(service, project, ref, into=into, strategy=strategy)
        return {"kind": "worker", **merged}
    return merge_stage(service, project, ref, into=into, strategy=strategy)
