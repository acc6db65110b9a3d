"""HTTP routes that bring work back: merge a worker, a workflow stage or a batch, overlapping
files, pull requests.

Errors travel like every other route's (the app's FlotillaError handler):
bad input 400, unknown worker, stage or batch 404, a failed merge or push 500 with
the one-line message (a conflict's names the files).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from flotilla.domain.roles import Permission
from flotilla.orchestrator import integration, stage_merge
from flotilla.orchestrator.service import FleetService, run_blocking
from flotilla.server.auth import require


class MergeBody(BaseModel):
    into: str | None = None
    strategy: str = "merge"


class RefMergeBody(MergeBody):
    ref: str  # a worker's name, a stage's name, or WORKFLOW/STAGE (see stage_merge.merge_ref)


class BatchMergeBody(MergeBody):
    order: str = "seq"
    env: dict[str, str] = Field(default_factory=dict)  # the tests' environment (the CLI's)


class PullRequestBody(BaseModel):
    base: str | None = None
    remote: str = "origin"
    draft: bool = False
    env: dict[str, str] = Field(default_factory=dict)  # token, API URL, PATH (the CLI's)


def integration_router(service: FleetService) -> APIRouter:
    router = APIRouter()

    @router.post("/workers/{name}/merge", dependencies=[Depends(require(Permission.MERGE))])
    async def merge_worker(name: str, project: str, body: MergeBody) -> dict[str, Any]:
        return dict(
            await run_blocking(
                lambda: integration.merge_worker(
                    service, project, name, into=body.into, strategy=body.strategy
                )
            )
        )

    @router.post("/merge", dependencies=[Depends(require(Permission.MERGE))])
    async def merge_ref(project: str, body: RefMergeBody) -> dict[str, Any]:
        """What `fleet merge REF` merges: a worker by name, else a workflow stage."""
        return dict(
            await run_blocking(
                lambda: stage_merge.merge_ref(
                    service, project, body.ref, into=body.into, strategy=body.strategy
                )
            )
        )

    @router.post("/batches/{batch}/merge", dependencies=[Depends(require(Permission.MERGE))])
    async def merge_batch(batch: str, project: str, body: BatchMergeBody) -> dict[str, Any]:
        return dict(
            await run_blocking(
                lambda: integration.merge_batch(
                    service,
                    project,
                    batch,
                    order=body.order,
                    into=body.into,
                    strategy=body.strategy,
                    env=body.env or None,
                )
            )
        )

    @router.get("/conflicts", dependencies=[Depends(require(Permission.READ))])
    async def conflicts(project: str, batch: str | None = None) -> dict[str, Any]:
        return dict(await run_blocking(integration.conflicts, service, project, batch))

    @router.post("/workers/{name}/pr", dependencies=[Depends(require(Permission.PUSH))])
    async def pull_request(name: str, project: str, body: PullRequestBody) -> dict[str, Any]:
        return dict(
            await run_blocking(
                lambda: integration.open_pr(
                    service,
                    project,
                    name,
                    base=body.base,
                    remote=body.remote,
                    draft=body.draft,
                    env=body.env or None,
                )
            )
        )

    return router
