"""MCP tools for workflows (DAGs of agent stages): run, watch, collect, cancel, clean up."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from flotilla.domain.workflow import WorkflowState
from flotilla.mcp.api import Endpoint
from flotilla.mcp.common import (
    CHANGES,
    DESTROYS,
    READ_ONLY,
    Ctx,
    Project,
    WaitSeconds,
    WorkflowRef,
    wait_until,
)
from flotilla.mcp.link import Link

RUN = Endpoint("POST", "/workflows")
LIST = Endpoint("GET", "/workflows")
STATUS = Endpoint("GET", "/workflows/{ref}")
RESULT = Endpoint("GET", "/workflows/{ref}/result")
CANCEL = Endpoint("POST", "/workflows/{ref}/cancel")
CLEANUP = Endpoint("POST", "/workflows/{ref}/cleanup")
ENDPOINTS = (RUN, LIST, STATUS, RESULT, CANCEL, CLEANUP)

FINISHED = {s.value for s in WorkflowState if s.is_terminal}


def register(server: MCPServer, link: Link) -> None:
    @server.tool(annotations=CHANGES)
    async def create_workflow(
        ctx: Ctx,
        template: Annotated[
            str | None,
            Field(
                description="A built-in template: write-review-refine, compete, judge, "
                "fanout-review. Give this or 'workflow'."
            ),
        ] = None,
        workflow: Annotated[
            dict[str, Any] | None,
            Field(
                description="A workflow definition: the table a workflow file holds "
                "(name, params, [[stages]] with name, agent, prompt, depends_on, ...)."
            ),
        ] = None,
        task_prompt: Annotated[
            str | None, Field(description="The task, filled into {task_prompt} in prompts.")
        ] = None,
        params: Annotated[
            dict[str, Any] | None,
            Field(description="Values of the workflow's parameters, e.g. {'count': 3}."),
        ] = None,
        fail_fast: Annotated[bool, Field(description="Cancel the rest on a failure.")] = False,
        max_cost_usd: Annotated[
            float | None, Field(ge=0, description="Budget in US dollars.")
        ] = None,
        max_tokens: Annotated[int | None, Field(ge=1, description="Budget in tokens.")] = None,
        merge: Annotated[bool, Field(description="Merge the result when it succeeds.")] = False,
        into: Annotated[str | None, Field(description="Merge into this branch.")] = None,
        project: Project = None,
    ) -> dict[str, Any]:
        """Start a workflow: a DAG of stages, each one or more agents, from a built-in
        template or a definition. Every problem of the definition is reported at once and
        nothing starts. Answers with its id and stages; follow it with get_workflow_status."""
        if (template is None) == (workflow is None):
            raise ToolError(
                "give either 'template' (a built-in's name) or 'workflow' (a definition)"
            )
        body = {
            "project": link.project(project),
            "template": template,
            "workflow": workflow,
            "source": "the workflow of create_workflow",
            "params": params or {},
            "task_prompt": task_prompt,
            "fail_fast": fail_fast,
            "max_cost_usd": max_cost_usd,
            "max_tokens": max_tokens,
            "merge": merge,
            "into": into,
            "env": link.caller.env,
            "depth": link.caller.depth,
            "parent": link.caller.parent,
        }
        async with link.api(ctx) as api:
            started: dict[str, Any] = await api.call(RUN, body=body)
            return started

    @server.tool(annotations=READ_ONLY)
    async def get_workflow_status(
        ctx: Ctx, workflow: WorkflowRef, wait_s: WaitSeconds = 0, project: Project = None
    ) -> dict[str, Any]:
        """A workflow's state, progress, budget and usage, and every stage with its state
        and workers. With wait_s, waits for it to finish, up to that many seconds."""
        where = {"project": link.project(project)}
        async with link.api(ctx) as api:

            async def fetch() -> dict[str, Any]:
                found: dict[str, Any] = await api.call(STATUS, path={"ref": workflow}, params=where)
                return found

            return await wait_until(fetch, lambda w: w.get("state") in FINISHED, wait_s)

    @server.tool(annotations=READ_ONLY)
    async def list_workflows(
        ctx: Ctx,
        state: Annotated[
            list[WorkflowState] | None, Field(description="Only workflows in these states.")
        ] = None,
        project: Project = None,
    ) -> dict[str, Any]:
        """The project's workflows: id, name, state, usage, winner."""
        params = {
            "project": link.project(project),
            "state": [s.value for s in state] if state else None,
        }
        async with link.api(ctx) as api:
            return {"workflows": await api.call(LIST, params=params)}

    @server.tool(annotations=READ_ONLY)
    async def collect_workflow_result(
        ctx: Ctx, workflow: WorkflowRef, project: Project = None
    ) -> dict[str, Any]:
        """What a workflow produced: each stage's facts (files, commits, tests, summary),
        the ranking tables with their reasons, and the winner."""
        where = {"project": link.project(project)}
        async with link.api(ctx) as api:
            result: dict[str, Any] = await api.call(RESULT, path={"ref": workflow}, params=where)
            return result

    @server.tool(annotations=DESTROYS)
    async def cancel_workflow(
        ctx: Ctx, workflow: WorkflowRef, project: Project = None
    ) -> dict[str, Any]:
        """Cancel a running workflow: its running agents are stopped, no new stage starts.
        Answers with its status."""
        where = {"project": link.project(project)}
        async with link.api(ctx) as api:
            status: dict[str, Any] = await api.call(CANCEL, path={"ref": workflow}, params=where)
            return status

    @server.tool(annotations=DESTROYS)
    async def cleanup_workflow(
        ctx: Ctx,
        workflow: WorkflowRef,
        delete_branches: Annotated[
            bool, Field(description="Also delete its stages' branches (default: keep them).")
        ] = False,
        project: Project = None,
    ) -> dict[str, Any]:
        """Remove a finished workflow's worktrees and workers (and, if asked, branches)."""
        where = {"project": link.project(project)}
        async with link.api(ctx) as api:
            removed: dict[str, Any] = await api.call(
                CLEANUP,
                path={"ref": workflow},
                params=where,
                body={"delete_branches": delete_branches},
            )
            return removed
