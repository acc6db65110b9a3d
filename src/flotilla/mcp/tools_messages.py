"""MCP tools for messages between agents and people, and for checkpoints of workers."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from flotilla.mcp.api import Endpoint
from flotilla.mcp.common import CHANGES, AgentKind, Ctx, Model, Project, drop_none
from flotilla.mcp.link import Link

SEND = Endpoint("POST", "/messages")
INBOX = Endpoint("GET", "/inbox/{agent}")
MARK_READ = Endpoint("POST", "/messages/{id}/read")
CHECKPOINT = Endpoint("POST", "/checkpoints")
RESTORE = Endpoint("POST", "/checkpoints/{name}/restore")
ENDPOINTS = (SEND, INBOX, MARK_READ, CHECKPOINT, RESTORE)


def register(server: MCPServer, link: Link) -> None:
    @server.tool(annotations=CHANGES)
    async def send_message(
        ctx: Ctx,
        to: Annotated[str, Field(description="The agent (worker name) to send to, or 'user'.")],
        body: Annotated[str, Field(description="The message.", min_length=1)],
        reply_to: Annotated[
            str | None, Field(description="The id of the message this answers.")
        ] = None,
        project: Project = None,
    ) -> dict[str, Any]:
        """A direct message, with an id: a headless agent gets it as its next turn, an
        interactive one in its pane. The answer says whether it was delivered or is still
        pending; it is never dropped silently nor delivered twice."""
        request = {
            "project": link.project(project),
            "to": to,
            "body": body,
            "reply_to": reply_to,
            "sender": link.caller.speaks_as,
        }
        async with link.api(ctx) as api:
            sent: dict[str, Any] = await api.call(SEND, body=drop_none(request))
            return sent

    @server.tool(annotations=CHANGES)
    async def read_inbox(
        ctx: Ctx,
        agent: Annotated[
            str | None,
            Field(description="Whose inbox (an agent's name, or 'user'); default: yours."),
        ] = None,
        unread_only: Annotated[bool, Field(description="Only messages not read yet.")] = False,
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many.")] = 100,
        mark_read: Annotated[
            bool | None,
            Field(description="Mark the delivered ones read (default: when it is your inbox)."),
        ] = None,
        project: Project = None,
    ) -> dict[str, Any]:
        """An agent's messages, oldest first (the newest `limit`), each with its id, sender,
        kind and delivery state. Reading your own inbox marks its delivered messages read."""
        me = link.me(ctx)
        whose = agent or me
        if whose is None:
            raise ToolError("name the agent whose inbox to read ('agent')")
        mine = whose == me
        mark = mine if mark_read is None else mark_read
        params = {"project": link.project(project), "unread": unread_only, "limit": limit}
        async with link.api(ctx) as api:
            found: list[dict[str, Any]] = await api.call(
                INBOX, path={"agent": whose}, params=params
            )
            if mark:
                for message in found:
                    if message.get("state") == "delivered":
                        message.update(await api.call(MARK_READ, path={"id": message["id"]}))
        return {"agent": whose, "messages": found}

    @server.tool(annotations=CHANGES)
    async def checkpoint_create(
        ctx: Ctx,
        name: Annotated[str, Field(description="The checkpoint's name, unique in the project.")],
        worker: Annotated[
            str | None, Field(description="The worker to save (default: yourself).")
        ] = None,
        notes: Annotated[str, Field(description="Notes to keep with it.")] = "",
        project: Project = None,
    ) -> dict[str, Any]:
        """Save a worker's state under a name: its branch and commit (uncommitted work is
        committed first), its agent session id, its summary, and notes."""
        whose = worker or link.me(ctx)
        if whose is None:
            raise ToolError("name the worker to save ('worker')")
        body = {"name": name, "worker": whose, "notes": notes}
        async with link.api(ctx) as api:
            saved: dict[str, Any] = await api.call(
                CHECKPOINT, params={"project": link.project(project)}, body=body
            )
            return saved

    @server.tool(annotations=CHANGES)
    async def checkpoint_restore(
        ctx: Ctx,
        checkpoint: Annotated[str, Field(description="The checkpoint's name.", min_length=1)],
        name: Annotated[str, Field(description="The new worker's name.", min_length=1)],
        prompt: Annotated[
            str | None, Field(description="What the new worker should do next.")
        ] = None,
        agent: AgentKind = None,
        model: Model = None,
        resume: Annotated[
            bool, Field(description="Resume the saved agent session when it can (default).")
        ] = True,
        project: Project = None,
    ) -> dict[str, Any]:
        """Start a new worker that continues from a checkpoint: a branch from the saved
        commit, and the saved session resumed when possible."""
        body = {
            "name": name,
            "prompt": prompt,
            "agent": agent,
            "model": model,
            "resume": resume,
            "env": link.caller.env,
            "depth": link.caller.depth,
            "parent": link.caller.parent,
        }
        async with link.api(ctx) as api:
            made: dict[str, Any] = await api.call(
                RESTORE,
                path={"name": checkpoint},
                params={"project": link.project(project)},
                body=body,
            )
            return made
