"""One stage's life in the engine: start it, create (or adopt) its workers, watch them end,
run its gate, then succeed, retry or fail it.

Order matters for durability: a stage moves to RUNNING together with the names
of its workers (one transaction) *before* any worker is made; a worker found
by that name after a crash is adopted, never made twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.counters import count
from flotilla.domain.errors import FlotillaError
from flotilla.domain.ranking import parse_judge_choice
from flotilla.domain.templating import (
    StageFacts,
    TemplateContext,
    combine_facts,
    facts_from_result,
    render,
)
from flotilla.domain.worker import TestReport, Worker
from flotilla.domain.workflow import StageState, WorkflowState
from flotilla.orchestrator.creation import CreateRequest
from flotilla.orchestrator.turns import load_env
from flotilla.orchestrator.workflow_codec import facts_to_dict
from flotilla.orchestrator.workflow_context import (
    Deps,
    RunContext,
    cancel_worker,
    stage_state_after,
    worker_name,
)
from flotilla.store.workflow_rows import StageWorkerRow
from flotilla.workspace.repo import resolve_ref
from flotilla.workspace.testing import run_test_command
from flotilla.workspace.worktrees import commit_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """How a stage's attempt ended."""

    ok: bool
    outcome: str
    facts: StageFacts
    error: str | None = None


# -- starting -------------------------------------------------------------------------


def plan_rows(ctx: RunContext, stage: str, attempt: int) -> list[StageWorkerRow]:
    spec = ctx.stage_spec(stage)
    plans = spec.workers()
    return [
        StageWorkerRow(
            workflow_id=ctx.wf.id,
            stage=stage,
            attempt=attempt,
            idx=plan.index,
            name=worker_name(ctx.wf.id, stage, plan.index, len(plans), attempt),
            agent=plan.agent,
            part=plan.part,
        )
        for plan in plans
    ]


def start(deps: Deps, ctx: RunContext, stage: str) -> None:
    """PENDING -> RUNNING with the next attempt's workers planned; they are made next round."""
    row = ctx.stages[stage]
    deps.workflows.start_stage(
        ctx.wf.id,
        stage,
        expect_state=row.state,
        expect_attempt=row.attempt,
        planned=plan_rows(ctx, stage, row.attempt + 1),
        started_at=deps.now(),
        ended_at=None,
        outcome=None,
        error=None,
    )


def retry(deps: Deps, ctx: RunContext, stage: str, error: str | None) -> None:
    row = ctx.stages[stage]
    count("workflow.stage_retries")
    deps.workflows.start_stage(
        ctx.wf.id,
        stage,
        expect_state=StageState.RUNNING,
        expect_attempt=row.attempt,
        planned=plan_rows(ctx, stage, row.attempt + 1),
        error=f"attempt {row.attempt} failed ({error or 'no reason given'}); retrying",
        ranking=None,
        winner=None,
    )


# -- workers ----------------------------------------------------------------------------


def _request(deps: Deps, ctx: RunContext, row: StageWorkerRow, prompt: str) -> CreateRequest:
    spec = ctx.stage_spec(row.stage)
    inherit: dict[str, Any] = {}
    base_ref = spec.base_ref or ctx.wf.options.get("base_commit")
    if row.role == "candidate" and spec.worktree == "inherit" and spec.inherit_from:
        source = ctx.output_row(spec.inherit_from)
        owner = None if source is None else ctx.worker_of(source, deps.store)
        if owner is None or not owner.worktree:
            raise _StageProblem(
                f"stage {spec.inherit_from!r} left no worktree to continue in "
                "(it did not run, or its worker was removed)"
            )
        inherit = {"inherit_worktree": owner.worktree, "inherit_branch": owner.branch}
        base_ref = _continue_from(owner.worktree, spec.inherit_from)
    return CreateRequest(
        project=ctx.wf.project,
        name=row.name,
        prompt=prompt,
        agent=row.agent,
        model=spec.model if row.role == "candidate" else None,
        base_ref=base_ref,
        batch=ctx.wf.id,
        depth=int(ctx.wf.options.get("depth") or 0),
        parent=ctx.wf.options.get("parent"),
        env=deps.load_env(ctx.wf.id),
        extra_flags=spec.extra_flags if row.role == "candidate" else (),
        timeout_s=spec.timeout_s,
        interactive=spec.interactive and row.role == "candidate",  # a tie's judge: headless
        **inherit,
    )


def _continue_from(worktree: str, upstream: str) -> str:
    """The commit an inheriting stage starts from: the work so far, committed on the shared
    branch, so the stage's facts (files, diff) are what it changed itself."""
    tree = Path(worktree)
    if not tree.is_dir():
        raise _StageProblem(f"the worktree of stage {upstream!r} ({tree}) no longer exists")
    try:
        made = commit_all(tree, f"flotilla: the work of stage {upstream!r}")
        return made or resolve_ref(tree, "HEAD")
    except FlotillaError as exc:
        raise _StageProblem(f"could not commit the work of stage {upstream!r}: {exc}") from exc


class _StageProblem(FlotillaError):
    """A worker of the stage cannot be made; the stage fails with this reason."""


def stage_prompt(ctx: RunContext, row: StageWorkerRow) -> str:
    spec = ctx.stage_spec(row.stage)
    context = TemplateContext(
        task_prompt=ctx.wf.task_prompt,
        stages=ctx.facts(),
        order=ctx.spec.stage_names,
        part=row.part,
        worker_index=row.idx + 1,
        worker_count=spec.worker_count,
    )
    return render(spec.prompt, context)


Wanted = list[tuple[StageWorkerRow, CreateRequest]]


def creation_requests(
    deps: Deps,
    ctx: RunContext,
    rows: list[StageWorkerRow],
    prompt_of: Callable[[RunContext, StageWorkerRow], str] = stage_prompt,
) -> tuple[Wanted, bool]:
    """The requests for the planned workers not made yet, and whether anything was stored:
    a worker a previous daemon made is adopted, one that cannot be asked for fails."""
    missing = [r for r in rows if r.worker_id is None and not r.ended]
    if not missing or ctx.wf.state is not WorkflowState.RUNNING:
        return [], False
    made = {w.name: w for w in ctx.workers.values()}
    wanted: Wanted = []
    changed = False
    for row in missing:
        if row.name in made:
            count("workflow.worker_adopted")
            deps.workflows.update_stage_worker(row, worker_id=made[row.name].id)
            changed = True
            continue
        try:
            wanted.append((row, _request(deps, ctx, row, prompt_of(ctx, row))))
        except _StageProblem as exc:
            count("workflow.inherit_missing")
            _not_made(deps, row, str(exc))
            changed = True
    return wanted, changed


def make_workers(
    deps: Deps,
    ctx: RunContext,
    rows: list[StageWorkerRow],
    prompt_of: Callable[[RunContext, StageWorkerRow], str] = stage_prompt,
) -> bool:
    """Create the planned workers not made yet, here and now; True if any was missing."""
    wanted, changed = creation_requests(deps, ctx, rows, prompt_of)
    if wanted:
        create_planned(deps, wanted)
    return changed or bool(wanted)


def create_planned(deps: Deps, wanted: Wanted) -> None:
    """Make the workers in one batch (worktrees concurrently) and record them. A worker
    whose stage stopped meanwhile (cancelled, say) is stopped at once."""
    made: list[tuple[StageWorkerRow, Worker]] = []
    try:
        outcome = deps.service.create_workers([request for _, request in wanted])
    except FlotillaError:
        # The batch checks every request first and refuses all for one bad one; one by
        # one, only the bad one's stage fails.
        count("workflow.batch_refused")
        for row, request in wanted:
            try:
                made.append((row, deps.service.create_worker(request)))
            except FlotillaError as exc:
                count("workflow.worker_not_created")
                _not_made(deps, row, f"could not create worker {row.name}: {exc}")
    else:
        created = {w.name: w for w in outcome.created}
        failed = dict(outcome.failed)
        for row, _ in wanted:
            if row.name in created:
                made.append((row, created[row.name]))
            else:
                count("workflow.worker_not_created")
                reason = failed.get(row.name, "no reason given")
                _not_made(deps, row, f"could not create worker {row.name}: {reason}")
    for row, worker in made:
        deps.workflows.update_stage_worker(row, worker_id=worker.id)
        stage = deps.workflows.get_stage(row.workflow_id, row.stage)
        if stage.state is not StageState.RUNNING or stage.attempt != row.attempt:
            count("workflow.worker_made_for_stopped_stage")
            cancel_worker(deps, worker, f"stage {row.stage!r} stopped while it was being made")


def _not_made(deps: Deps, row: StageWorkerRow, reason: str) -> None:
    deps.workflows.update_stage_worker(
        row, state="failed", outcome="error", result={"outcome": "error", "error": reason}
    )


def observe(deps: Deps, ctx: RunContext, rows: list[StageWorkerRow]) -> bool:
    """Record the end of each planned worker that ended; True if any did."""
    changed = False
    for row in rows:
        if row.ended or row.worker_id is None:
            continue
        worker = ctx.worker_of(row, deps.store)
        if worker is None:
            deps.workflows.update_stage_worker(
                row,
                state="cancelled",
                outcome="cancelled",
                result={"outcome": "cancelled", "error": f"worker {row.name} was removed"},
            )
        elif worker.state.is_terminal:
            result = dict(worker.result or {})
            result.setdefault("outcome", worker.outcome.value if worker.outcome else "error")
            if worker.error and not result.get("error"):
                result["error"] = worker.error
            deps.workflows.update_stage_worker(
                row,
                state=worker.state.value,
                outcome=result["outcome"],
                input_tokens=worker.input_tokens,
                output_tokens=worker.output_tokens,
                cost_usd=worker.cost_usd,
                result=result,
            )
        else:
            continue
        changed = True
    return changed


# -- deciding ---------------------------------------------------------------------------


def run_gate(deps: Deps, ctx: RunContext, row: StageWorkerRow) -> TestReport | None:
    """The stage's gate in the worker's worktree; None when there is no gate (or worktree)."""
    gate = ctx.stage_spec(row.stage).gate
    worker = ctx.worker_of(row, deps.store)
    if gate is None or worker is None or not Path(worker.worktree).is_dir():
        return None
    limits = deps.service.config_for(ctx.wf.project).config.limits
    env = load_env(Path(worker.run_dir))
    return run_test_command(Path(worker.worktree), gate, env, limits.test_timeout_s)


def gate_error(row: StageWorkerRow, report: TestReport) -> str:
    tail = report.output_tail.strip().splitlines()[-1:] if report.output_tail.strip() else []
    last = f": {tail[0][:200]}" if tail else ""
    return f"gate `{report.command}` failed in {row.name} (exit {report.exit_code}){last}"


def worker_facts(row: StageWorkerRow) -> StageFacts:
    return facts_from_result(row.result or {"outcome": row.outcome or "error"})


def plain_verdict(deps: Deps, ctx: RunContext, stage: str) -> Verdict:
    """A stage that does not rank: it succeeds when every worker did and the gate passes."""
    rows = ctx.rows(stage)
    facts = combine_facts([(r.name, worker_facts(r)) for r in rows])
    failed = [r for r in rows if r.state != "succeeded"]
    if failed:
        first = failed[0]
        reason = (first.result or {}).get("error") or f"{first.name} ended {first.outcome}"
        return Verdict(False, first.outcome or "error", facts, str(reason))
    for row in rows:
        report = run_gate(deps, ctx, row)
        if report is not None and not report.ok:
            return Verdict(False, "tests_failed", facts, gate_error(row, report))
    outcomes = {r.outcome for r in rows}
    outcome = "success" if "success" in outcomes else (rows[0].outcome or "success")
    return Verdict(True, outcome, facts)


def conclude(deps: Deps, ctx: RunContext, stage: str, verdict: Verdict) -> None:
    """Succeed or fail the stage's attempt (or start the next attempt while retries last)."""
    row = ctx.stages[stage]
    spec = ctx.stage_spec(stage)
    running = ctx.wf.state is WorkflowState.RUNNING
    if not verdict.ok and running and row.attempt - row.retry_base <= spec.retries:
        retry(deps, ctx, stage, verdict.error)
        return
    tokens_in, tokens_out, cost = ctx.stage_usage(stage)
    deps.workflows.update_stage(
        ctx.wf.id,
        stage,
        expect_state=StageState.RUNNING,
        expect_attempt=row.attempt,
        state=stage_state_after(verdict.ok),
        outcome=verdict.outcome,
        facts=facts_to_dict(verdict.facts),
        error=verdict.error,
        ended_at=deps.now(),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=cost,
    )


def judge_answer(rows: list[StageWorkerRow]) -> str:
    return "\n\n".join(str((r.result or {}).get("summary") or "") for r in rows).strip()


def pick_choice(ctx: RunContext, stage: str) -> tuple[str | None, list[str], str]:
    """What a `picks` stage chose: (candidate or None, the candidates, its answer)."""
    picked = ctx.stage_spec(stage).picks or ""
    ranking = ctx.stages[picked].ranking or {}
    names = [str(r["name"]) for r in ranking.get("rows", ())]
    answer = judge_answer(ctx.rows(stage))
    return parse_judge_choice(answer, names), names, answer


def cancel(deps: Deps, ctx: RunContext, stage: str, reason: str) -> None:
    """Stop a stage's workers and mark it cancelled."""
    row = ctx.stages[stage]
    rows = [r for r in ctx.planned if r.stage == stage and r.attempt == row.attempt]
    for planned in rows:
        worker = ctx.worker_of(planned, deps.store)
        if worker is not None and not worker.state.is_terminal:
            cancel_worker(deps, worker, reason)
    ctx.workers = {
        w.id: w for w in deps.store.list_workers(project=ctx.wf.project, batch=ctx.wf.id)
    }
    observe(deps, ctx, rows)
    tokens_in, tokens_out, cost = ctx.stage_usage(stage)
    deps.workflows.update_stage(
        ctx.wf.id,
        stage,
        expect_state=row.state,
        expect_attempt=row.attempt,
        state=StageState.CANCELLED,
        error=reason,
        ended_at=deps.now(),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=cost,
    )


def gate_summary(report: TestReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {"command": report.command, "exit_code": report.exit_code, "ok": report.ok}
