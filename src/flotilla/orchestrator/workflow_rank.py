"""Rank stages: candidates ranked by facts, a judge for a tie, a `picks` stage's choice,
and the losers' worktrees removed once the winner is known.

The ranking table (with the reason for each place) is stored on the stage
before anything acts on it, so a restart picks up where it stopped: a stored
undecided table means "the judge is running", a decided one "finish the stage".
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from flotilla.counters import count
from flotilla.domain.errors import FlotillaError, NotFound
from flotilla.domain.ranking import (
    Candidate,
    Ranked,
    apply_judge,
    parse_judge_choice,
    rank,
    tie_break_prompt,
    winner,
)
from flotilla.domain.templating import combine_facts
from flotilla.domain.workflow import StageState
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.orchestrator.workflow_codec import merge_rows, ranked_from_dicts, ranked_to_dict
from flotilla.orchestrator.workflow_context import Deps, RunContext, worker_name
from flotilla.orchestrator.workflow_stages import (
    Verdict,
    conclude,
    gate_summary,
    judge_answer,
    make_workers,
    observe,
    pick_choice,
    run_gate,
    worker_facts,
)
from flotilla.store.workflow_rows import JUDGE, StageWorkerRow
from flotilla.workspace.diffing import diff_text

log = logging.getLogger(__name__)

DIFF_CHARS = 6000  # of each tied candidate's diff shown to a judge


def decide(deps: Deps, ctx: RunContext, stage: str) -> bool:
    """One step of a rank stage whose candidates all ended; True when something changed."""
    record = ctx.stages[stage].ranking
    if record is None:
        _store(deps, ctx, stage, first_ranking(deps, ctx, stage))
        return True
    if not record["decided"]:
        decided, changed = judge_phase(deps, ctx, stage, record)
        if decided is None:
            return changed
        _store(deps, ctx, stage, decided)
        return True
    verdict = rank_verdict(ctx, stage, record)
    if verdict.ok and ctx.picked_by(stage) is None:
        remove_losers(deps, ctx, stage, str(record["winner"]))
    conclude(deps, ctx, stage, verdict)
    return True


def _store(deps: Deps, ctx: RunContext, stage: str, record: dict[str, Any]) -> None:
    row = ctx.stages[stage]
    deps.workflows.update_stage(
        ctx.wf.id,
        stage,
        expect_state=StageState.RUNNING,
        expect_attempt=row.attempt,
        ranking=record,
        winner=record["winner"],
    )
    publish(deps, ctx, stage, record)


def publish(deps: Deps, ctx: RunContext, stage: str, record: dict[str, Any]) -> None:
    """The workflow's ranking tables and winner (the last decided one in stage order)."""
    tables = dict(ctx.wf.ranking or {})
    tables[stage] = record
    order = ctx.spec.stage_names
    decided = [name for name in order if name in tables and tables[name].get("decided")]
    best = tables[decided[-1]]["winner"] if decided else None
    ctx.wf = deps.workflows.update_workflow(ctx.wf.id, ranking=tables, winner=best)


def first_ranking(deps: Deps, ctx: RunContext, stage: str) -> dict[str, Any]:
    """Gates in every candidate's worktree, then rank by facts; a tie goes to the judge."""
    spec = ctx.stage_spec(stage)
    rows = ctx.rows(stage)
    gates: dict[str, dict[str, Any]] = {}
    candidates = []
    for row in rows:
        report = run_gate(deps, ctx, row) if row.state == "succeeded" else None
        summary = gate_summary(report)
        if summary is not None:
            gates[row.name] = summary
        checks = () if summary is None else (("gate", bool(summary["ok"])),)
        result = row.result or {"outcome": row.outcome or "error"}
        candidates.append(Candidate.from_result(row.name, result, checks))
    ranked = rank(candidates)
    record: dict[str, Any] = {
        "rows": [ranked_to_dict(r) for r in ranked],
        "winner": winner(ranked),
        "decided": True,
        "gates": gates,
        "judge": None,
        "picked_by": None,
    }
    if record["winner"] is not None:
        return record
    tied = [r.name for r in ranked if r.place == 1]
    if not any(row.state == "succeeded" for row in rows):
        record.update(first_by_name(ranked, "no candidate succeeded, no judge is asked"))
    elif ctx.picked_by(stage) is not None:
        record["winner"] = tied[0]  # provisional: the picking stage chooses
        record["note"] = f"tied on the facts; stage {ctx.picked_by(stage)!r} picks the winner"
    elif spec.judge:
        record["decided"] = False
        record["judge"] = {"agent": spec.judge, "tied": tied}
    else:
        record.update(first_by_name(ranked, "no judge is configured"))
    return record


def first_by_name(ranked: list[Ranked], why: str) -> dict[str, Any]:
    """Break a tie without a judge: the first by name wins, and the table says so."""
    tied = [r.name for r in ranked if r.place == 1]
    chosen = tied[0]
    others = tied[1:]
    table = []
    for r in ranked:
        if r.name == chosen:
            base = r.reason.split("; tied with")[0]
            reason = (
                f"{base}; tied with {', '.join(others)} on every fact; "
                f"{why}, so the first by name is kept"
            )
            table.append(replace(r, tied_with=(), reason=reason))
        elif r.name in tied:
            reason = (
                f"tied with {chosen} on every fact; {why}, so the first by name ({chosen}) is kept"
            )
            table.append(
                replace(
                    r, place=2, tied_with=tuple(n for n in others if n != r.name), reason=reason
                )
            )
        else:
            table.append(r)
    return {"rows": [ranked_to_dict(r) for r in table], "winner": chosen, "decided": True}


def _details(deps: Deps, ctx: RunContext, row: StageWorkerRow) -> str:
    """What a judge sees of one candidate: its summary and its diff (shortened)."""
    summary = str((row.result or {}).get("summary") or "(no summary)")
    worker = ctx.worker_of(row, deps.store)
    diff = ""
    if worker is not None and Path(worker.worktree).is_dir():
        try:
            base = RunSettings.from_dict(worker.settings).base_commit
            diff = diff_text(Path(worker.worktree), base)
        except FlotillaError:
            count("workflow.judge_diff_failed")
    if len(diff) > DIFF_CHARS:
        diff = diff[:DIFF_CHARS] + "\n[... diff shortened ...]"
    return f"summary: {summary}\n\n```diff\n{diff}```" if diff else f"summary: {summary}"


def judge_phase(
    deps: Deps, ctx: RunContext, stage: str, record: dict[str, Any]
) -> tuple[dict[str, Any] | None, bool]:
    """Run the judge of a tie: (the decided record, or None while it works; changed?)."""
    spec = ctx.stage_spec(stage)
    row = ctx.stages[stage]
    judge = ctx.judge_row(stage)
    if judge is None:
        deps.workflows.add_stage_worker(
            StageWorkerRow(
                workflow_id=ctx.wf.id,
                stage=stage,
                attempt=row.attempt,
                idx=len(ctx.rows(stage)),
                name=worker_name(ctx.wf.id, stage, 0, 1, row.attempt, judge=True),
                agent=spec.judge or "",
                role=JUDGE,
            )
        )
        return None, True
    tied_names = list(record["judge"]["tied"])
    ranked = ranked_from_dicts(record["rows"])
    if judge.worker_id is None and not judge.ended:
        tied = [r for r in ranked if r.name in tied_names]
        by_name = {r.name: r for r in ctx.rows(stage)}
        details = {name: _details(deps, ctx, by_name[name]) for name in tied_names}
        prompt = tie_break_prompt(ctx.wf.task_prompt, tied, details)
        make_workers(deps, ctx, [judge], lambda _ctx, _row: prompt)
        return None, True
    if observe(deps, ctx, [judge]):
        return None, True
    if not judge.ended:
        return None, False
    answer = judge_answer([judge])
    choice = parse_judge_choice(answer, tied_names) if judge.state == "succeeded" else None
    if choice is not None:
        table = apply_judge(ranked, choice, reason_line(answer))
        decided: dict[str, Any] = {"rows": merge_rows(table, record["rows"]), "winner": choice}
    else:
        count("workflow.judge_no_choice")
        why = f"the judge {judge.name} named none of the tied candidates"
        decided = first_by_name(ranked, why)
        decided["rows"] = merge_rows(ranked_from_dicts(decided["rows"]), record["rows"])
    decided["decided"] = True
    decided["judge"] = {
        **record["judge"],
        "worker": judge.name,
        "choice": choice,
        "answer": answer[:2000],
    }
    _remove(deps, ctx, judge, keep_branch=False)
    return {**record, **decided}, True


def reason_line(answer: str) -> str:
    """The judge's reason: its answer without the WINNER line, on one short line."""
    text = re.sub(r"^\W*winner\W*[:=].*$", "", answer, flags=re.I | re.M)
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")


def rank_verdict(ctx: RunContext, stage: str, record: dict[str, Any]) -> Verdict:
    rows = ctx.rows(stage)
    best = str(record["winner"])
    chosen = next((r for r in rows if r.name == best), rows[0])
    if ctx.picked_by(stage) is not None:
        facts = combine_facts([(r.name, worker_facts(r)) for r in rows])
    else:
        facts = worker_facts(chosen)
    gate = record.get("gates", {}).get(chosen.name)
    if gate is not None and not gate["ok"]:
        message = f"gate `{gate['command']}` failed in {chosen.name} (exit {gate['exit_code']})"
        return Verdict(False, "tests_failed", facts, f"no candidate passed: the best, {message}")
    if chosen.state != "succeeded":
        return Verdict(
            False,
            chosen.outcome or "error",
            facts,
            f"no candidate succeeded: the best, {chosen.name}, ended {chosen.outcome}",
        )
    return Verdict(True, chosen.outcome or "success", facts)


def apply_pick(deps: Deps, ctx: RunContext, stage: str, verdict: Verdict) -> Verdict:
    """A `picks` stage ended well: its answer names the winner of the stage it picks."""
    picked = ctx.stage_spec(stage).picks
    if picked is None:
        return verdict
    source = ctx.stages[picked]
    record = source.ranking
    if record is None or source.state is not StageState.SUCCEEDED:
        return verdict
    if record.get("picked_by") == stage:
        return verdict  # applied before a restart
    choice, names, answer = pick_choice(ctx, stage)
    if choice is None:
        count("workflow.pick_no_choice")
        return Verdict(
            False,
            "error",
            verdict.facts,
            f"the answer names none of the candidates of {picked!r} ({', '.join(names)}): "
            "it must contain a line `WINNER: <name>`",
        )
    table = apply_judge(
        ranked_from_dicts(record["rows"]), choice, reason_line(answer), override=True
    )
    judged = {
        **record,
        "rows": merge_rows(table, record["rows"]),
        "winner": choice,
        "decided": True,
        "picked_by": stage,
        "judge": {"stage": stage, "choice": choice, "answer": answer[:2000]},
    }
    deps.workflows.update_stage(ctx.wf.id, picked, ranking=judged, winner=choice)
    publish(deps, ctx, picked, judged)
    remove_losers(deps, ctx, picked, choice)
    return verdict


def remove_losers(deps: Deps, ctx: RunContext, stage: str, best: str) -> None:
    """Remove every other candidate's worktree; branches kept unless the options say not."""
    keep = bool(ctx.wf.options.get("keep_loser_branches", True))
    for row in ctx.rows(stage):
        if row.name != best:
            _remove(deps, ctx, row, keep_branch=keep)


def _remove(deps: Deps, ctx: RunContext, row: StageWorkerRow, *, keep_branch: bool) -> None:
    worker = ctx.worker_of(row, deps.store)
    if worker is None:
        return
    try:
        deps.service.kill(worker, keep_branch=keep_branch)
    except NotFound:
        count("workflow.loser_already_gone")
    except FlotillaError:
        count("workflow.loser_not_removed")
        log.exception("removing %s failed", row.name)
