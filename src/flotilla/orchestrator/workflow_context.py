"""What one round of the workflow engine reads from the store, and the helpers it shares.

The engine never keeps state between rounds: each round loads a `RunContext`
(the workflow, its stages, its planned workers and their worker rows), decides
one step, stores it, and loads again. That is what makes a restart harmless.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flotilla.counters import count
from flotilla.domain.errors import IllegalTransition, NotFound
from flotilla.domain.states import Outcome, WorkerState
from flotilla.domain.templating import StageFacts
from flotilla.domain.worker import Worker
from flotilla.domain.workflow import StageSpec, StageState, WorkflowSpec
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.workflow_codec import facts_from_dict, spec_from_dict
from flotilla.runtime.process import ProcessIdentity, kill_tree
from flotilla.store.base import Store
from flotilla.store.workflow_rows import CANDIDATE, JUDGE, StageRow, StageWorkerRow, WorkflowRow
from flotilla.store.workflow_sql import WorkflowStore, workflow_store


@dataclass
class Deps:
    """The engine's collaborators: the fleet service (workers) and the workflow tables."""

    service: FleetService
    workflows: WorkflowStore

    @classmethod
    def of(cls, service: FleetService) -> Deps:
        return cls(service, workflow_store(service.store))

    @property
    def store(self) -> Store:
        return self.service.store

    def now(self) -> float:
        return time.time()

    # The launching user's environment (PATH, API keys), for the workers of later stages.
    # Kept in a private file, not in the database.

    def env_path(self, workflow_id: str) -> Path:
        return self.service.home / "workflows" / f"{workflow_id}.env.json"

    def save_env(self, workflow_id: str, env: dict[str, str]) -> None:
        path = self.env_path(workflow_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(env, handle)

    def load_env(self, workflow_id: str) -> dict[str, str]:
        path = self.env_path(workflow_id)
        if not path.exists():
            count("workflow.env_file_missing")
            return dict(os.environ)
        env: dict[str, str] = json.loads(path.read_text())
        return env


def worker_name(
    workflow_id: str, stage: str, index: int, count_: int, attempt: int, *, judge: bool = False
) -> str:
    """`wf-<id>-<stage>[-<n>|-judge][-r<attempt>]`: stable, so a restart finds the same name."""
    parts = ["wf", workflow_id, stage]
    if judge:
        parts.append("judge")
    elif count_ > 1:
        parts.append(str(index + 1))
    if attempt > 1:
        parts.append(f"r{attempt}")
    return "-".join(parts)


@dataclass
class RunContext:
    wf: WorkflowRow
    spec: WorkflowSpec
    stages: dict[str, StageRow]
    planned: list[StageWorkerRow]
    workers: dict[str, Worker] = field(default_factory=dict)  # by id, this workflow's batch

    @classmethod
    def load(cls, deps: Deps, workflow_id: str) -> RunContext:
        wf = deps.workflows.get_workflow(workflow_id)
        stages = {row.name: row for row in deps.workflows.stages(workflow_id)}
        planned = deps.workflows.stage_workers(workflow_id)
        workers = {w.id: w for w in deps.store.list_workers(project=wf.project, batch=wf.id)}
        return cls(wf, spec_from_dict(wf.spec), stages, planned, workers)

    def stage_spec(self, name: str) -> StageSpec:
        return self.spec.stage(name)

    def states(self) -> dict[str, StageState]:
        return {name: row.state for name, row in self.stages.items()}

    def outcomes(self) -> dict[str, str]:
        return {name: row.outcome for name, row in self.stages.items() if row.outcome}

    def rows(
        self, stage: str, *, attempt: int | None = None, role: str | None = CANDIDATE
    ) -> list[StageWorkerRow]:
        """Planned workers of `stage` (its current attempt unless given), by index."""
        wanted = self.stages[stage].attempt if attempt is None else attempt
        found = [
            r
            for r in self.planned
            if r.stage == stage and r.attempt == wanted and (role is None or r.role == role)
        ]
        return sorted(found, key=lambda r: r.idx)

    def judge_row(self, stage: str) -> StageWorkerRow | None:
        rows = self.rows(stage, role=JUDGE)
        return rows[0] if rows else None

    def worker_of(self, row: StageWorkerRow, store: Store) -> Worker | None:
        """The worker a planned row names, if it (still) exists."""
        if row.worker_id is None:
            return None
        worker = self.workers.get(row.worker_id)
        if worker is not None:
            return worker
        try:
            return store.get_worker(row.worker_id)
        except NotFound:
            count("workflow.worker_gone")
            return None

    def facts(self) -> dict[str, StageFacts]:
        return {
            name: facts_from_dict(row.facts)
            for name, row in self.stages.items()
            if row.facts is not None
        }

    def picked_by(self, stage: str) -> str | None:
        """The stage that picks `stage`'s winner (a judge stage), if any."""
        return next((s.name for s in self.spec.stages if s.picks == stage), None)

    def output_row(self, stage: str) -> StageWorkerRow | None:
        """The worker whose worktree and branch are `stage`'s result: the winner of a rank
        stage, else its first worker of the current attempt."""
        row = self.stages[stage]
        rows = self.rows(stage)
        if row.winner is not None:
            rows = [r for r in rows if r.name == row.winner] or rows
        return rows[0] if rows else None

    def usage(self, rows: Iterable[StageWorkerRow]) -> tuple[int, int, float]:
        """Tokens in, tokens out and cost of these planned workers, live while they run."""
        tokens_in = tokens_out = 0
        cost = 0.0
        for row in rows:
            worker = self.workers.get(row.worker_id or "")
            if row.ended or worker is None:
                tokens_in, tokens_out = tokens_in + row.input_tokens, tokens_out + row.output_tokens
                cost += row.cost_usd
            else:
                tokens_in, tokens_out = (
                    tokens_in + worker.input_tokens,
                    tokens_out + worker.output_tokens,
                )
                cost += worker.cost_usd
        return tokens_in, tokens_out, cost

    def stage_usage(self, stage: str) -> tuple[int, int, float]:
        return self.usage(r for r in self.planned if r.stage == stage)

    def total_usage(self) -> tuple[int, int, float]:
        return self.usage(self.planned)


def cancel_worker(deps: Deps, worker: Worker, reason: str) -> None:
    """Stop a worker's agent and mark it cancelled; its worktree stays (cleanup removes it)."""
    if not worker.state.is_terminal:
        try:
            deps.store.update_worker(
                worker.id,
                state=WorkerState.CANCELLED,
                outcome=Outcome.CANCELLED,
                error=reason,
                ended_at=deps.now(),
            )
        except IllegalTransition:
            count("workflow.cancel_raced")  # it ended meanwhile: nothing left to stop
        except NotFound:
            count("workflow.cancel_worker_gone")
            return
    if worker.pid:
        kill_tree(ProcessIdentity(worker.pid, worker.pid_started_at or 0))
    deps.service.on_change()


def stage_state_after(ok: bool) -> StageState:
    return StageState.SUCCEEDED if ok else StageState.FAILED
