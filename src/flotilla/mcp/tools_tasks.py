"""MCP tools for tasks: create, list, claim (atomic, leased), update and finish, assign."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from flotilla.domain.tasks import TaskState
from flotilla.mcp.api import Endpoint
from flotilla.mcp.common import CHANGES, READ_ONLY, Ctx, drop_none
from flotilla.mcp.link import Link

CREATE = Endpoint("POST", "/tasks")
LIST = Endpoint("GET", "/tasks")
CLAIM = Endpoint("POST", "/tasks/claim")
ASSIGN = Endpoint("POST", "/tasks/{id}/assign")
UPDATE = Endpoint("PATCH", "/tasks/{id}")
HEARTBEAT = Endpoint("POST", "/tasks/{id}/heartbeat")
COMPLETE = Endpoint("POST", "/tasks/{id}/complete")
FAIL = Endpoint("POST", "/tasks/{id}/fail")
RELEASE = Endpoint("POST", "/tasks/{id}/release")
ENDPOINTS = (CREATE, LIST, CLAIM, ASSIGN, UPDATE, HEARTBEAT, COMPLETE, FAIL, RELEASE)

TaskId = Annotated[str, Field(description="The task's id (t-...).", min_length=1)]
Team = Annotated[str, Field(description="The team whose queue it is.", min_length=1)]
Labels = Annotated[list[str] | None, Field(description="Labels, e.g. ['backend', 'bug'].")]
LeaseSeconds = Annotated[
    float | None,
    Field(
        gt=0, description="Hold the claim this long before it must be renewed (default: config)."
    ),
]


def register(server: MCPServer, link: Link) -> None:
    def acting() -> str | None:
        return link.caller.speaks_as

    @server.tool(annotations=CHANGES)
    async def task_create(
        ctx: Ctx,
        team: Team,
        title: Annotated[str, Field(description="What is to be done, in one line.", min_length=1)],
        description: Annotated[str, Field(description="Details, acceptance criteria.")] = "",
        labels: Labels = None,
        priority: Annotated[int, Field(description="Higher is claimed first.")] = 0,
        depends_on: Annotated[
            list[str] | None, Field(description="Ids of tasks that must be done first.")
        ] = None,
        agent_kind: Annotated[
            str | None, Field(description="Only this agent kind may claim it (e.g. codex).")
        ] = None,
        requires: Annotated[
            list[str] | None, Field(description="Capabilities a claimer must have.")
        ] = None,
    ) -> dict[str, Any]:
        """Add a task to a team's queue. It can be claimed once its dependencies are done."""
        body = drop_none(
            {
                "team": team,
                "title": title,
                "description": description,
                "labels": labels,
                "priority": priority,
                "depends_on": depends_on,
                "agent_kind": agent_kind,
                "requires": requires,
            }
        )
        async with link.api(ctx) as api:
            task: dict[str, Any] = await api.call(CREATE, body=body)
            return task

    @server.tool(annotations=READ_ONLY)
    async def task_list(
        ctx: Ctx,
        team: Annotated[str | None, Field(description="Only this team's tasks.")] = None,
        state: Annotated[list[TaskState] | None, Field(description="Only these states.")] = None,
        label: Annotated[str | None, Field(description="Only tasks with this label.")] = None,
        assignee: Annotated[str | None, Field(description="Only tasks held by this agent.")] = None,
        limit: Annotated[int | None, Field(ge=1, description="At most this many.")] = None,
    ) -> dict[str, Any]:
        """Tasks, oldest first, with state, holder, lease, priority and dependencies."""
        states = [s.value for s in state] if state else None
        params = {"team": team, "state": states, "label": label, "assignee": assignee}
        async with link.api(ctx) as api:
            return {"tasks": await api.call(LIST, params={**params, "limit": limit})}

    @server.tool(annotations=CHANGES)
    async def task_claim(
        ctx: Ctx,
        team: Annotated[str | None, Field(description="Claim from this team's queue.")] = None,
        agent_kind: Annotated[
            str | None, Field(description="Your agent kind, for tasks that need one.")
        ] = None,
        labels: Annotated[
            list[str] | None, Field(description="Your capabilities, for tasks that need some.")
        ] = None,
        lease_s: LeaseSeconds = None,
    ) -> dict[str, Any]:
        """Atomically claim the best claimable task (highest priority, then oldest, its
        dependencies done, its needs met): no task is ever claimed twice. The claim is a
        lease: renew it with task_update(status='progress'), or it returns to the queue.
        Answers {"task": null} when there is nothing to claim."""
        body = drop_none(
            {
                "team": team,
                "agent_kind": agent_kind,
                "labels": labels,
                "lease_s": lease_s,
                "claimer": acting(),
            }
        )
        async with link.api(ctx) as api:
            claimed: dict[str, Any] = await api.call(CLAIM, body=body)
            return claimed

    @server.tool(annotations=CHANGES)
    async def task_update(
        ctx: Ctx,
        task_id: TaskId,
        status: Annotated[
            Literal["progress", "done", "failed", "released"],
            Field(
                description="progress: still working (renews the lease); done or failed: "
                "finish it; released: give it back to the queue."
            ),
        ] = "progress",
        result: Annotated[
            Any, Field(description="The result (any JSON) when done or failed.")
        ] = None,
        reason: Annotated[
            str | None, Field(description="Why it failed, or why it is released.")
        ] = None,
        note: Annotated[
            str | None, Field(description="A line for the task's history, e.g. progress made.")
        ] = None,
        lease_s: LeaseSeconds = None,
    ) -> dict[str, Any]:
        """Report on a task you hold: note progress and renew its lease, complete it with a
        result, fail it saying why, or release it to the queue."""
        actor = acting()
        if status == "failed" and not reason:
            raise ToolError("say why the task failed: give 'reason'")
        endpoint, body = {
            "progress": (HEARTBEAT, {"lease_s": lease_s, "holder": actor}),
            "done": (COMPLETE, {"result": result, "actor": actor}),
            "failed": (FAIL, {"reason": reason, "result": result, "actor": actor}),
            "released": (RELEASE, {"reason": reason, "actor": actor}),
        }[status]
        async with link.api(ctx) as api:
            if note:  # while the task is still held: a finished one takes no notes
                noted = {"note": note, "actor": actor}
                await api.call(UPDATE, path={"id": task_id}, body=drop_none(noted))
            task: dict[str, Any] = await api.call(
                endpoint, path={"id": task_id}, body=drop_none(body)
            )
            return task

    @server.tool(annotations=CHANGES)
    async def team_assign(
        ctx: Ctx,
        task_id: TaskId,
        assignee: Annotated[str, Field(description="The team member (agent) to give it to.")],
        lease_s: LeaseSeconds = None,
        reassign: Annotated[
            bool, Field(description="Take it from its current holder (coordinators).")
        ] = False,
    ) -> dict[str, Any]:
        """Hand a task to a member of the team (a lead handing out work): it is claimed on
        the member's behalf, with a lease the member renews."""
        body = drop_none({"assignee": assignee, "lease_s": lease_s, "reassign": reassign})
        async with link.api(ctx) as api:
            task: dict[str, Any] = await api.call(ASSIGN, path={"id": task_id}, body=body)
            return task
