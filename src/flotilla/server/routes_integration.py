"""HTTP routes that bring work back: merge a worker or a batch, overlapping files, pull requests.

Errors travel like every other route's (the app's FlotillaError handler):
bad input 400, unknown worker or batch 404, a failed merge or push 500 with
the one-line message (a conflict's names the files).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from flotilla.orchestrator import integration
from flotilla.orchestrator.service import FleetService, run_blocking


class MergeBody(BaseModel):
    into: str | None = None
    strategy: str = "merge"


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

    @router.post("/workers/{name}/merge")
    async def merge_worker(name: str, project: str, body: MergeBody) -> dict[str, Any]:
        return dict(
            await run_blocking(
                lambda: integration.merge_worker(
                    service, project, name, into=body.into, strategy=body.strategy
                )
            )
        )

    @router.post("/batches/{batch}/merge")
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

    @router.get("/conflicts")
    async def conflicts(project: str, batch: str | None = None) -> dict[str, Any]:
        return dict(await run_blocking(integration.conflicts, service, project, batch))

    @router.post("/workers/{name}/pr")
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
