"""What `fleet workflow status/list/result` (and the API) show of a workflow: plain dicts.

Live numbers (tokens, cost, elapsed time) come from the workers while they
run and from the stored totals once they ended.
"""

from __future__ import annotations

import time
from typing import Any

from flotilla.domain.workflow import StageState
from flotilla.orchestrator.turns import tmux_session_name
from flotilla.orchestrator.workflow_context import Deps, RunContext
from flotilla.store.workflow_rows import StageWorkerRow, WorkflowRow


def _elapsed(started: float | None, ended: float | None) -> float | None:
    if started is None:
        return None
    return round((ended or time.time()) - started, 3)


def summary(row: WorkflowRow) -> dict[str, Any]:
    """One line of `fleet workflow list`."""
    return {
        "id": row.id,
        "name": row.name,
        "state": row.state.value,
        "project": row.project,
        "created_at": row.created_at,
        "elapsed_s": _elapsed(row.started_at, row.ended_at),
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost_usd": row.cost_usd,
        "winner": row.winner,
        "error": row.error,
    }


def _worker_view(ctx: RunContext, planned: StageWorkerRow) -> dict[str, Any]:
    worker = ctx.workers.get(planned.worker_id or "")
    live = worker is not None and not planned.ended
    out: dict[str, Any] = {
        "name": planned.name,
        "agent": planned.agent,
        "role": planned.role,
        "attempt": planned.attempt,
        "part": planned.part,
        "state": planned.state or (worker.state.value if worker else "planned"),
        "outcome": planned.outcome or (worker.outcome.value if worker and worker.outcome else None),
        "input_tokens": worker.input_tokens if live and worker else planned.input_tokens,
        "output_tokens": worker.output_tokens if live and worker else planned.output_tokens,
        "cost_usd": worker.cost_usd if live and worker else planned.cost_usd,
        "exists": worker is not None,
    }
    if worker is not None:
        out.update(
            branch=worker.branch,
            worktree=worker.worktree,
            started_at=worker.started_at,
            ended_at=worker.ended_at,
            elapsed_s=_elapsed(worker.started_at, worker.ended_at),
            interactive=worker.interactive,
            # Where a person attaches (`fleet attach NAME`) while the worker runs.
            tmux_session=tmux_session_name(worker) if worker.interactive else None,
        )
    return out


def status(ctx: RunContext) -> dict[str, Any]:
    """The whole workflow: every stage with its workers, the totals and the progress."""
    stages = []
    for name, row in ctx.stages.items():
        spec = ctx.stage_spec(name)
        tokens_in, tokens_out, cost = ctx.stage_usage(name)
        planned = sorted(
            (r for r in ctx.planned if r.stage == name),
            key=lambda r: (r.attempt, r.idx),
        )
        stages.append(
            {
                "name": name,
                "state": row.state.value,
                "agents": list(spec.agent_kinds),
                "depends_on": list(spec.depends_on),
                "worktree": spec.worktree,
                "inherit_from": spec.inherit_from,
                "rank": spec.rank,
                "interactive": spec.interactive,
                "attempt": row.attempt,
                "outcome": row.outcome,
                "error": row.error,
                "winner": row.winner,
                "started_at": row.started_at,
                "ended_at": row.ended_at,
                "elapsed_s": _elapsed(row.started_at, row.ended_at),
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "cost_usd": cost,
                "workers": [_worker_view(ctx, r) for r in planned],
            }
        )
    tokens_in, tokens_out, cost = ctx.total_usage()
    done = sum(1 for row in ctx.stages.values() if row.state.is_terminal)
    wf = ctx.wf
    return {
        **summary(wf),
        "task_prompt": wf.task_prompt,
        "options": {k: v for k, v in wf.options.items() if k != "base_commit"},
        "base_commit": wf.options.get("base_commit"),
        "started_at": wf.started_at,
        "ended_at": wf.ended_at,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": cost,
        "budget": {"max_cost_usd": ctx.spec.max_cost_usd, "max_tokens": ctx.spec.max_tokens},
        "fail_fast": ctx.spec.fail_fast,
        "progress": {"done": done, "total": len(ctx.stages)},
        "stages": stages,
        "ranking": wf.ranking or {},
        "merged": wf.merged,
    }


def result(ctx: RunContext) -> dict[str, Any]:
    """What the workflow produced: each stage's facts, the ranking tables, the winner."""
    stages: dict[str, Any] = {}
    for name, row in ctx.stages.items():
        facts = row.facts or {}
        stage_in, stage_out, stage_cost = ctx.stage_usage(name)
        stages[name] = {
            "state": row.state.value,
            "outcome": row.outcome,
            "error": row.error,
            "attempt": row.attempt,
            "winner": row.winner,
            "summary": facts.get("summary", ""),
            "files": facts.get("files", []),
            "diff_stat": facts.get("diff_stat", ""),
            "tests": facts.get("tests", ""),
            "next_steps": facts.get("next_steps", []),
            "workers": [r.name for r in ctx.rows(name, role=None)] if row.attempt else [],
            "input_tokens": stage_in,
            "output_tokens": stage_out,
            "cost_usd": stage_cost,
        }
    tokens_in, tokens_out, cost = ctx.total_usage()
    return {
        "id": ctx.wf.id,
        "name": ctx.wf.name,
        "state": ctx.wf.state.value,
        "error": ctx.wf.error,
        "winner": ctx.wf.winner,
        "ranking": ctx.wf.ranking or {},
        "merged": ctx.wf.merged,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": cost,
        "stages": stages,
        "succeeded": [n for n, r in ctx.stages.items() if r.state is StageState.SUCCEEDED],
    }


def load(deps: Deps, workflow_id: str) -> RunContext:
    return RunContext.load(deps, workflow_id)
