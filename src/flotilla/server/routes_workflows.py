"""HTTP routes of workflows: validate, run, list, status, result, cancel, resume, cleanup.

A workflow is given as a built-in template's name or as a definition (the
same table a TOML or YAML workflow file holds, as JSON). Errors travel like
every other route's: bad input 400 (a definition's problems all in one
message), an unknown workflow 404. Reading and validating need `read`; running,
cancelling, resuming and cleaning up need `workflow_run`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from flotilla.domain.roles import Permission
from flotilla.domain.states import parse_states
from flotilla.domain.workflow import WorkflowState
from flotilla.orchestrator import workflow_view
from flotilla.orchestrator.service import FleetService, run_blocking
from flotilla.orchestrator.workflow_create import WorkflowRequest
from flotilla.orchestrator.workflow_engine import WorkflowEngine, engine_for
from flotilla.server.auth import require

READ = [Depends(require(Permission.READ))]
RUN = [Depends(require(Permission.WORKFLOW_RUN))]


class WorkflowBody(BaseModel):
    project: str
    template: str | None = None
    workflow: dict[str, Any] | None = None
    source: str = "workflow"
    params: dict[str, Any] = Field(default_factory=dict)
    task_prompt: str | None = None
    fail_fast: bool = False
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    merge: bool = False
    into: str | None = None
    keep_loser_branches: bool = True
    env: dict[str, str] = Field(default_factory=dict)
    depth: int = 0
    parent: str | None = None


class ResumeBody(BaseModel):
    max_cost_usd: float | None = None
    max_tokens: int | None = None


class CleanupBody(BaseModel):
    delete_branches: bool = False


def workflow_router(service: FleetService) -> APIRouter:
    router = APIRouter()
    engine: WorkflowEngine = engine_for(service)

    def _status(ref: str, project: str | None) -> dict[str, Any]:
        row = engine.find(ref, project)
        return workflow_view.status(workflow_view.load(engine.deps, row.id))

    @router.post("/workflows/validate", dependencies=READ)
    async def validate(body: WorkflowBody) -> dict[str, Any]:
        """Every problem of a definition, without starting anything."""
        request = WorkflowRequest(**body.model_dump())
        return dict(await run_blocking(engine.validate, request))

    @router.post("/workflows", dependencies=RUN)
    async def run(body: WorkflowBody) -> dict[str, Any]:
        request = WorkflowRequest(**body.model_dump())
        row = await run_blocking(engine.create, request)
        return dict(await run_blocking(_status, row.id, None))

    @router.get("/workflows", dependencies=READ)
    async def list_workflows(
        project: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        states = parse_states(WorkflowState, state)
        rows = await run_blocking(engine.deps.workflows.list_workflows, project, states)
        return [workflow_view.summary(row) for row in rows]

    @router.get("/workflows/{ref}", dependencies=READ)
    async def status(ref: str, project: str | None = None) -> dict[str, Any]:
        return dict(await run_blocking(_status, ref, project))

    @router.get("/workflows/{ref}/result", dependencies=READ)
    async def result(ref: str, project: str | None = None) -> dict[str, Any]:
        def answer() -> dict[str, Any]:
            row = engine.find(ref, project)
            return workflow_view.result(workflow_view.load(engine.deps, row.id))

        return dict(await run_blocking(answer))

    @router.post("/workflows/{ref}/cancel", dependencies=RUN)
    async def cancel(ref: str, project: str | None = None) -> dict[str, Any]:
        def answer() -> dict[str, Any]:
            row = engine.cancel(engine.find(ref, project).id)
            return _status(row.id, None)

        return dict(await run_blocking(answer))

    @router.post("/workflows/{ref}/resume", dependencies=RUN)
    async def resume(ref: str, body: ResumeBody, project: str | None = None) -> dict[str, Any]:
        def answer() -> dict[str, Any]:
            row = engine.find(ref, project)
            engine.resume(row.id, max_cost_usd=body.max_cost_usd, max_tokens=body.max_tokens)
            return _status(row.id, None)

        return dict(await run_blocking(answer))

    @router.post("/workflows/{ref}/cleanup", dependencies=RUN)
    async def cleanup(ref: str, body: CleanupBody, project: str | None = None) -> dict[str, Any]:
        def answer() -> dict[str, Any]:
            row = engine.find(ref, project)
            return engine.cleanup(row.id, delete_branches=body.delete_branches)

        return dict(await run_blocking(answer))

    return router
