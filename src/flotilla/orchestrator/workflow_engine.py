"""The workflow engine: moves a stored workflow forward, one stored step at a time.

`advance(id)` is idempotent and durable: it reads the states from the store,
asks `dag.plan` what to do, and makes each move with a compare-and-set before
acting on it (a stage becomes RUNNING, with its workers' names, before any
worker is made). Kill the daemon at any line: the next `advance` reads where
things stand and goes on, adopting workers already made, never re-running a
stage that ended. One engine per daemon; moves of one workflow are serialized
by an in-process lock, and the store's compare-and-set guards the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flotilla.counters import count
from flotilla.domain import dag
from flotilla.domain.errors import FlotillaError, NotFound, UsageError
from flotilla.domain.workflow import StageState, WorkflowState
from flotilla.orchestrator import integration
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.workflow_codec import spec_to_dict
from flotilla.orchestrator.workflow_context import Deps, RunContext, cancel_worker
from flotilla.orchestrator.workflow_create import WorkflowRequest, create, problems_of
from flotilla.orchestrator.workflow_rank import apply_pick, decide
from flotilla.orchestrator.workflow_stages import (
    Wanted,
    cancel,
    conclude,
    create_planned,
    creation_requests,
    observe,
    plain_verdict,
    start,
)
from flotilla.store.workflow_rows import StageWorkerRow, WorkflowRow

log = logging.getLogger(__name__)

CREATORS = 2  # batches of workers made at once (each makes its worktrees concurrently)
MAX_ROUNDS = 1000  # steps of one advance; each stores a move, so this is never reached
ACTIVE = (WorkflowState.PENDING, WorkflowState.RUNNING)


class WorkflowEngine:
    def __init__(self, service: FleetService) -> None:
        self.deps = Deps.of(service)
        self.on_change: Callable[[str], None] = lambda workflow_id: None  # wakes the runner
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._creating: set[str] = set()  # planned workers being made in the background
        self._creator = ThreadPoolExecutor(CREATORS, thread_name_prefix="wf-create")

    def _lock(self, workflow_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(workflow_id, threading.Lock())

    # -- requests -------------------------------------------------------------------

    def validate(self, request: WorkflowRequest) -> dict[str, Any]:
        spec, problems = problems_of(self.deps, request)
        return {"name": spec.name, "stages": list(spec.stage_names), "problems": problems}

    def create(self, request: WorkflowRequest) -> WorkflowRow:
        row = create(self.deps, request)
        self.on_change(row.id)
        return row

    def find(self, ref: str, project: str | None = None) -> WorkflowRow:
        """A workflow by its id or a unique prefix of it."""
        found = self.deps.workflows.find_workflows(ref, project)
        exact = [row for row in found if row.id == ref]
        if exact:
            return exact[0]
        if not found:
            raise NotFound(f"no workflow {ref!r} in this project (see `fleet workflow list`)")
        if len(found) > 1:
            ids = ", ".join(row.id for row in found[:5])
            raise UsageError(f"{ref!r} names several workflows ({ids}): give more of the id")
        return found[0]

    def active_ids(self) -> list[str]:
        return [row.id for row in self.deps.workflows.list_workflows(states=ACTIVE)]

    # -- advancing ------------------------------------------------------------------

    def advance(self, workflow_id: str) -> WorkflowRow:
        """Take every step that is due now; return the workflow as stored."""
        with self._lock(workflow_id):
            for _ in range(MAX_ROUNDS):
                with self._guard:  # read before loading: a name that left it is stored
                    creating = frozenset(self._creating)
                ctx = RunContext.load(self.deps, workflow_id)
                if ctx.wf.state.is_terminal:
                    if ctx.wf.state is WorkflowState.CANCELLED:
                        self._settle(ctx)
                    return ctx.wf
                if ctx.wf.state is WorkflowState.PENDING:
                    self.deps.workflows.update_workflow(
                        workflow_id,
                        expect_state=WorkflowState.PENDING,
                        state=WorkflowState.RUNNING,
                        started_at=self.deps.now(),
                    )
                    continue
                if not self._step(ctx, creating):
                    return ctx.wf
            count("workflow.advance_rounds_exhausted")
            return self.deps.workflows.get_workflow(workflow_id)

    def _step(self, ctx: RunContext, creating: frozenset[str]) -> bool:
        """One move (stored); False when nothing is due until a worker ends."""
        states = ctx.states()
        readiness = dag.plan(ctx.spec, states, ctx.outcomes())
        if readiness.cancel:
            failed = [n for n, s in states.items() if s is StageState.FAILED]
            for name in readiness.cancel:
                cancel(self.deps, ctx, name, f"cancelled: fail_fast after {failed[0]!r} failed")
            return True
        running = [name for name, row in ctx.stages.items() if row.state is StageState.RUNNING]
        if running and self._follow(ctx, running, creating):
            return True
        for name in readiness.skip:
            self.deps.workflows.update_stage(
                ctx.wf.id,
                name,
                expect_state=StageState.PENDING,
                state=StageState.SKIPPED,
                ended_at=self.deps.now(),
            )
        if readiness.skip:
            return True
        tokens_in, tokens_out, cost = ctx.total_usage()
        budget = ctx.spec.budget_reached(cost, tokens_in + tokens_out)
        if readiness.start:
            if budget is None:
                for name in readiness.start:
                    start(self.deps, ctx, name)
                return True
            if ctx.wf.error != budget:  # said once, before anything else happens
                count("workflow.budget_reached")
                self.deps.workflows.update_workflow(ctx.wf.id, error=budget)
                return True
        if all(state.is_terminal for state in states.values()):
            self._finish(ctx)
            return True
        stopped = budget is not None and (ctx.wf.error or "").startswith("budget reached")
        if stopped and StageState.RUNNING not in states.values():
            for name, state in states.items():
                if not state.is_terminal:
                    cancel(self.deps, ctx, name, f"not started: {budget}")
            return True
        return False

    def _follow(self, ctx: RunContext, running: list[str], creating: frozenset[str]) -> bool:
        """The running stages: have their missing workers made (all in one batch, in the
        background), record the ends, decide each stage whose workers all ended."""
        rows = [row for name in running for row in ctx.rows(name)]
        to_make = [row for row in rows if row.name not in creating]
        wanted, changed = creation_requests(self.deps, ctx, to_make)
        if wanted:
            self._create_in_background(ctx.wf.id, wanted)
        if observe(self.deps, ctx, rows) or changed:
            return True
        for name in running:
            if all(row.ended for row in ctx.rows(name)):
                changed = self._decide(ctx, name) or changed
        return changed

    def _create_in_background(self, workflow_id: str, wanted: Wanted) -> None:
        """Worktrees and setup commands can take long: the workflow's other stages go on
        (their ends noticed, their dependants started) while these workers are made."""
        names = {row.name for row, _ in wanted}
        with self._guard:
            self._creating |= names

        def create() -> None:
            try:
                create_planned(self.deps, wanted)
            except Exception:
                count("workflow.create_failed")
                log.exception("creating workers of workflow %s failed", workflow_id)
            finally:
                with self._guard:
                    self._creating -= names
                self.on_change(workflow_id)

        self._creator.submit(create)

    def _decide(self, ctx: RunContext, name: str) -> bool:
        spec = ctx.stage_spec(name)
        if spec.rank:
            return decide(self.deps, ctx, name)
        verdict = plain_verdict(self.deps, ctx, name)
        if verdict.ok and spec.picks:
            verdict = apply_pick(self.deps, ctx, name, verdict)
        conclude(self.deps, ctx, name, verdict)
        return True

    def _finish(self, ctx: RunContext) -> None:
        """Every stage ended: the workflow's state, its totals, and --merge."""
        state = dag.workflow_state(ctx.spec, ctx.states(), ctx.outcomes())
        error = ctx.wf.error
        if error and error.startswith("budget reached") and state is WorkflowState.CANCELLED:
            state = WorkflowState.FAILED
        elif state is WorkflowState.FAILED and not error:
            failed = [r for r in ctx.stages.values() if r.state is StageState.FAILED]
            error = f"stage {failed[0].name!r} failed: {failed[0].error}" if failed else None
        merged = None
        if state is WorkflowState.SUCCEEDED and ctx.wf.options.get("merge"):
            merged, problem = self._merge(ctx)
            if problem is not None:
                state, error = WorkflowState.FAILED, problem
        tokens_in, tokens_out, cost = ctx.total_usage()
        self.deps.workflows.update_workflow(
            ctx.wf.id,
            expect_state=WorkflowState.RUNNING,
            state=state,
            error=error,
            merged=merged,
            ended_at=self.deps.now(),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost,
        )

    def _settle(self, ctx: RunContext) -> None:
        """A workflow that ended (cancelled, say) has no agent left running."""
        for worker in ctx.workers.values():
            if not worker.state.is_terminal:
                cancel_worker(self.deps, worker, f"its workflow {ctx.wf.id} is {ctx.wf.state}")

    # -- merging ----------------------------------------------------------------------

    def merge_targets(self, ctx: RunContext) -> list[StageWorkerRow]:
        """The workers whose branches are the workflow's result: each succeeded stage's
        workers that changed something (a rank stage's winner only), one per branch."""
        chosen: dict[str, StageWorkerRow] = {}
        for name in dag.topological_order(ctx.spec):
            row = ctx.stages[name]
            if row.state is not StageState.SUCCEEDED:
                continue
            rows = ctx.rows(name)
            if ctx.stage_spec(name).rank:
                rows = [r for r in rows if r.name == row.winner]
            for planned in rows:
                worker = ctx.worker_of(planned, self.deps.store)
                if worker is None or not (planned.result or {}).get("files"):
                    continue
                chosen.pop(worker.branch, None)  # keep the last worker on a shared branch
                chosen[worker.branch] = planned
        return list(chosen.values())

    def _merge(self, ctx: RunContext) -> tuple[list[dict[str, Any]], str | None]:
        merged: list[dict[str, Any]] = []
        into = ctx.wf.options.get("into")
        for planned in self.merge_targets(ctx):
            try:
                merged.append(
                    integration.merge_worker(
                        self.deps.service, ctx.wf.project, planned.name, into=into
                    )
                )
            except FlotillaError as exc:
                count("workflow.merge_failed")
                return merged, f"merging {planned.name} failed: {exc}"
        return merged, None

    # -- the user's commands ------------------------------------------------------------

    def cancel(self, workflow_id: str) -> WorkflowRow:
        """Stop every worker of the workflow and end it as cancelled; worktrees stay."""
        with self._lock(workflow_id):
            ctx = RunContext.load(self.deps, workflow_id)
            if ctx.wf.state.is_terminal:
                raise UsageError(f"workflow {workflow_id} already ended ({ctx.wf.state})")
            for name, row in ctx.stages.items():
                if not row.state.is_terminal:
                    cancel(self.deps, ctx, name, "cancelled by the user")
            ctx = RunContext.load(self.deps, workflow_id)
            self._settle(ctx)
            tokens_in, tokens_out, cost = ctx.total_usage()
            return self.deps.workflows.update_workflow(
                workflow_id,
                state=WorkflowState.CANCELLED,
                error="cancelled by the user",
                ended_at=self.deps.now(),
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=cost,
            )

    def resume(
        self, workflow_id: str, *, max_cost_usd: float | None = None, max_tokens: int | None = None
    ) -> WorkflowRow:
        """Failed and cancelled stages (and the skips they caused) run again; what succeeded
        stays. New budgets replace the workflow's."""
        with self._lock(workflow_id):
            ctx = RunContext.load(self.deps, workflow_id)
            if ctx.wf.state not in (WorkflowState.FAILED, WorkflowState.CANCELLED):
                raise UsageError(
                    f"workflow {workflow_id} is {ctx.wf.state}: only a failed or cancelled "
                    "workflow can be resumed"
                )
            spec = ctx.spec
            if max_cost_usd is not None or max_tokens is not None:
                spec = dataclasses.replace(
                    spec,
                    max_cost_usd=spec.max_cost_usd if max_cost_usd is None else max_cost_usd,
                    max_tokens=spec.max_tokens if max_tokens is None else max_tokens,
                )
            tokens_in, tokens_out, cost = ctx.total_usage()
            budget = spec.budget_reached(cost, tokens_in + tokens_out)
            if budget is not None:
                raise UsageError(f"{budget}: resume with a larger --max-cost or --max-tokens")
            again = dag.resume_stages(spec, ctx.states(), ctx.outcomes())
            row = self.deps.workflows.resume(
                workflow_id,
                again,
                expect_state=ctx.wf.state,
                spec=spec_to_dict(spec),
                error=None,
                ended_at=None,
                merged=None,
            )
        self.on_change(workflow_id)
        return row

    def cleanup(self, workflow_id: str, *, delete_branches: bool = False) -> dict[str, Any]:
        """Remove the worktrees of every worker the workflow made (branches kept unless
        asked): the records of its stages stay, so `result` still answers."""
        with self._lock(workflow_id):
            ctx = RunContext.load(self.deps, workflow_id)
            if not ctx.wf.state.is_terminal:
                raise UsageError(
                    f"workflow {workflow_id} is {ctx.wf.state}: cancel it first "
                    f"(fleet workflow cancel {workflow_id})"
                )
            removed: list[str] = []
            for planned in ctx.planned:
                worker = ctx.worker_of(planned, self.deps.store)
                if worker is None:
                    continue
                try:
                    self.deps.service.kill(worker, keep_branch=not delete_branches)
                except NotFound:
                    count("workflow.cleanup_worker_gone")
                    continue
                removed.append(worker.name)
            self.deps.env_path(workflow_id).unlink(missing_ok=True)
        return {"id": workflow_id, "removed": removed, "branches_kept": not delete_branches}


_engines: weakref.WeakKeyDictionary[FleetService, WorkflowEngine] = weakref.WeakKeyDictionary()
_engines_guard = threading.Lock()


def engine_for(service: FleetService) -> WorkflowEngine:
    """The one engine of a service (the API's routes and the daemon's runner share it)."""
    with _engines_guard:
        engine = _engines.get(service)
        if engine is None:
            engine = _engines[service] = WorkflowEngine(service)
        return engine
