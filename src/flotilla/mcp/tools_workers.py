"""MCP tools for workers (one agent run each): create, watch, collect, prompt, stop, clean up."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from flotilla.domain.states import TERMINAL_STATES, WorkerState
from flotilla.mcp.api import Endpoint
from flotilla.mcp.common import (
    CHANGES,
    DESTROYS,
    READ_ONLY,
    AgentKind,
    BaseRef,
    Ctx,
    Model,
    Project,
    Prompt,
    WaitSeconds,
    WorkerName,
    wait_until,
)
from flotilla.mcp.link import Link

HEALTH = Endpoint("GET", "/health")
CREATE = Endpoint("POST", "/workers")
LIST = Endpoint("GET", "/workers")
GET = Endpoint("GET", "/workers/{name}")
RESULT = Endpoint("GET", "/workers/{name}/result")
DIFF = Endpoint("GET", "/workers/{name}/diff")
PROMPT = Endpoint("POST", "/workers/{name}/prompt")
DELETE = Endpoint("DELETE", "/workers/{name}")
ENDPOINTS = (HEALTH, CREATE, LIST, GET, RESULT, DIFF, PROMPT, DELETE)

SETTLED = {s.value for s in TERMINAL_STATES} | {WorkerState.WAITING.value}


def register(server: MCPServer, link: Link) -> None:
    @server.tool(annotations=READ_ONLY)
    async def healthcheck(ctx: Ctx) -> dict[str, Any]:
        """Whether the fleet's daemon is up: status, version, uptime, store reachable, and
        the counters of every error path it caught."""
        async with link.api(ctx) as api:
            answer: dict[str, Any] = await api.call(HEALTH)
            return answer

    @server.tool(annotations=CHANGES)
    async def create_worker(
        ctx: Ctx,
        name: Annotated[
            str, Field(description="A new worker's name; also its branch <prefix>/<name>.")
        ],
        prompt: Prompt,
        agent: AgentKind = None,
        model: Model = None,
        base_ref: BaseRef = None,
        quick: Annotated[
            bool, Field(description="Skip the project's setup_commands (run quick_setup).")
        ] = False,
        interactive: Annotated[
            bool, Field(description="Run the agent's own TUI in tmux instead of headless.")
        ] = False,
        project: Project = None,
    ) -> dict[str, Any]:
        """Launch one coding agent in a new git worktree of the project. Answers at once
        with the worker (state queued or starting); the agent runs in the background:
        follow it with get_worker_status, then collect_worker_result."""
        body = {
            "project": link.project(project),
            "name": name,
            "prompt": prompt,
            "agent": agent,
            "model": model,
            "base_ref": base_ref,
            "quick": quick,
            "interactive": interactive,
            "depth": link.caller.depth,
            "parent": link.caller.parent,
            "env": link.caller.env,
        }
        async with link.api(ctx) as api:
            created: dict[str, Any] = await api.call(CREATE, body=body)
            return created

    @server.tool(annotations=READ_ONLY)
    async def get_worker_status(
        ctx: Ctx, name: WorkerName, wait_s: WaitSeconds = 0, project: Project = None
    ) -> dict[str, Any]:
        """A worker's state (queued, starting, running, waiting, succeeded, failed,
        cancelled), outcome, error, branch, worktree, usage and timings. With wait_s,
        waits for it to finish or to need input, up to that many seconds."""
        where = {"project": link.project(project)}
        async with link.api(ctx) as api:

            async def fetch() -> dict[str, Any]:
                found: dict[str, Any] = await api.call(GET, path={"name": name}, params=where)
                return found

            return await wait_until(fetch, lambda w: w.get("state") in SETTLED, wait_s)

    @server.tool(annotations=READ_ONLY)
    async def list_workers(
        ctx: Ctx,
        state: Annotated[
            list[WorkerState] | None, Field(description="Only workers in these states.")
        ] = None,
        batch: Annotated[str | None, Field(description="Only this batch's workers.")] = None,
        pattern: Annotated[
            str | None, Field(description="Only names matching this glob, e.g. 'fan-*'.")
        ] = None,
        project: Project = None,
    ) -> dict[str, Any]:
        """The project's workers, each with its state, agent, branch, batch and usage."""
        params = {
            "project": link.project(project),
            "state": [s.value for s in state] if state else None,
            "batch": batch,
            "pattern": pattern,
        }
        async with link.api(ctx) as api:
            return {"workers": await api.call(LIST, params=params)}

    @server.tool(annotations=READ_ONLY)
    async def collect_worker_result(
        ctx: Ctx,
        name: WorkerName,
        include_diff: Annotated[
            bool, Field(description="Also return the full diff of its branch (can be long).")
        ] = False,
        project: Project = None,
    ) -> dict[str, Any]:
        """What a finished worker produced, from facts: files changed and commits (from
        git), test results, its own summary and next steps, tokens and cost."""
        where = {"project": link.project(project)}
        async with link.api(ctx) as api:
            result: dict[str, Any] = await api.call(RESULT, path={"name": name}, params=where)
            if include_diff:
                result["diff"] = await api.call(DIFF, path={"name": name}, params=where)
            return result

    @server.tool(annotations=CHANGES)
    async def send_prompt(
        ctx: Ctx,
        name: WorkerName,
        text: Annotated[str, Field(description="The follow-up message.", min_length=1)],
        project: Project = None,
    ) -> dict[str, Any]:
        """Send a follow-up prompt to a worker: a headless agent gets it as its next turn
        (its session resumed), an interactive one in its pane, confirmed."""
        where = {"project": link.project(project)}
        async with link.api(ctx) as api:
            reply: dict[str, Any] = await api.call(
                PROMPT, path={"name": name}, params=where, body={"text": text}
            )
        if reply.get("status") == "not delivered":
            raise ToolError(f"not delivered to {name}: {reply.get('reason')}")
        return reply

    @server.tool(annotations=DESTROYS)
    async def cancel_worker(
        ctx: Ctx,
        name: WorkerName,
        keep_branch: Annotated[
            bool,
            Field(description="Keep its branch, with uncommitted work committed (default)."),
        ] = True,
        project: Project = None,
    ) -> dict[str, Any]:
        """Stop a worker's agent now and remove its worktree and record. By default its
        branch is kept, with any uncommitted work committed to it, so nothing is lost."""
        where = {"project": link.project(project), "keep_branch": keep_branch}
        async with link.api(ctx) as api:
            stopped: dict[str, Any] = await api.call(DELETE, path={"name": name}, params=where)
            return stopped

    @server.tool(annotations=DESTROYS)
    async def cleanup_worker(
        ctx: Ctx,
        name: WorkerName,
        keep_branch: Annotated[
            bool, Field(description="Keep its branch (default: delete it too).")
        ] = False,
        project: Project = None,
    ) -> dict[str, Any]:
        """Remove a finished worker: its worktree, its record and (unless keep_branch) its
        branch. Refuses while the agent still runs: use cancel_worker to stop it."""
        repo = link.project(project)
        async with link.api(ctx) as api:
            worker = await api.call(GET, path={"name": name}, params={"project": repo})
            if worker.get("state") not in {s.value for s in TERMINAL_STATES}:
                raise ToolError(
                    f"worker {name} is still {worker.get('state')}: "
                    "stop it with cancel_worker, or wait until it finishes"
                )
            params = {"project": repo, "keep_branch": keep_branch}
            removed: dict[str, Any] = await api.call(DELETE, path={"name": name}, params=params)
            return removed
