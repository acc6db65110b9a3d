"""MCP tools for teams, swarms and the blackboard.

Who acts: a caller with a token acts as the agent its token names (the API
refuses anything else); `fleet mcp` run by an agent Flotilla launched acts as
that agent ($FLOTILLA_WORKER), as the `fleet` commands do.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from flotilla.domain.roles import Role
from flotilla.mcp.api import Endpoint
from flotilla.mcp.common import (
    CHANGES,
    READ_ONLY,
    AgentKind,
    BaseRef,
    Ctx,
    Model,
    Project,
    Prompt,
    drop_none,
)
from flotilla.mcp.link import Link

TEAMS = Endpoint("GET", "/teams")
CREATE_TEAM = Endpoint("POST", "/teams")
TEAM = Endpoint("GET", "/teams/{team}")
SPAWN = Endpoint("POST", "/teams/{team}/spawn")
BROADCAST = Endpoint("POST", "/messages")
CREATE_SWARM = Endpoint("POST", "/swarms")
JOIN = Endpoint("POST", "/swarms/{swarm}/join")
POST = Endpoint("POST", "/swarms/{swarm}/posts")
READ = Endpoint("GET", "/swarms/{swarm}/posts")
ENDPOINTS = (TEAMS, CREATE_TEAM, TEAM, SPAWN, BROADCAST, CREATE_SWARM, JOIN, POST, READ)

Team = Annotated[str, Field(description="The team's name.", min_length=1)]
Swarm = Annotated[str, Field(description="The swarm's name.", min_length=1)]


def register(server: MCPServer, link: Link) -> None:
    # -- teams --------------------------------------------------------------------------------

    @server.tool(annotations=CHANGES)
    async def team_create(
        ctx: Ctx,
        name: Annotated[str, Field(description="The new team's name.", min_length=1)],
        lead: Annotated[
            str | None, Field(description="An agent (or person) to add as its team lead.")
        ] = None,
        project: Project = None,
    ) -> dict[str, Any]:
        """Make a team of agents working on the project; add members with team_spawn."""
        body = drop_none({"name": name, "project": link.project(project), "lead": lead})
        async with link.api(ctx) as api:
            team: dict[str, Any] = await api.call(CREATE_TEAM, body=body)
            return team

    @server.tool(annotations=READ_ONLY)
    async def team_status(
        ctx: Ctx,
        team: Annotated[
            str | None, Field(description="The team; omit it to list every team.")
        ] = None,
    ) -> dict[str, Any]:
        """A team, its members with their roles and their workers' states, and a count of
        workers by state. Without a team: every team."""
        async with link.api(ctx) as api:
            if team is None:
                return {"teams": await api.call(TEAMS)}
            status: dict[str, Any] = await api.call(TEAM, path={"team": team})
            return status

    @server.tool(annotations=CHANGES)
    async def team_spawn(
        ctx: Ctx,
        team: Team,
        name: Annotated[str, Field(description="The new worker's (and member's) name.")],
        prompt: Prompt,
        role: Annotated[Role, Field(description="The member's role in the team.")] = Role.WORKER,
        agent: AgentKind = None,
        model: Model = None,
        base_ref: BaseRef = None,
    ) -> dict[str, Any]:
        """Start a worker in the team's project and make it a member of the team in a role;
        its agent gets the team and role in its environment. Follow it with
        get_worker_status like any worker."""
        body = {
            "name": name,
            "prompt": prompt,
            "role": role.value,
            "agent": agent,
            "model": model,
            "base_ref": base_ref,
            "env": link.caller.env,
            "depth": link.caller.depth,
            "parent": link.caller.parent,
        }
        async with link.api(ctx) as api:
            made: dict[str, Any] = await api.call(SPAWN, path={"team": team}, body=body)
            return made

    @server.tool(annotations=CHANGES)
    async def team_broadcast(
        ctx: Ctx,
        team: Team,
        body: Annotated[str, Field(description="The message.", min_length=1)],
        project: Project = None,
    ) -> dict[str, Any]:
        """Send one message to every running member of a team (not to yourself); each
        delivery is tracked (pending, delivered, read or failed) and listed in the answer."""
        request = {
            "project": link.project(project),
            "team": team,
            "body": body,
            "sender": link.caller.speaks_as,
        }
        async with link.api(ctx) as api:
            sent: dict[str, Any] = await api.call(BROADCAST, body=drop_none(request))
            return sent

    # -- swarms and the blackboard ------------------------------------------------------------

    @server.tool(annotations=CHANGES)
    async def swarm_create(
        ctx: Ctx,
        name: Annotated[str, Field(description="The new swarm's name.", min_length=1)],
        goal: Annotated[str, Field(description="What its agents work towards.", min_length=1)],
        max_size: Annotated[int, Field(ge=1, description="At most this many members.")],
        team: Annotated[str | None, Field(description="The team it belongs to.")] = None,
    ) -> dict[str, Any]:
        """Group agents around a goal; its blackboard is where they share findings."""
        body = drop_none({"name": name, "goal": goal, "max_size": max_size, "team": team})
        async with link.api(ctx) as api:
            swarm: dict[str, Any] = await api.call(CREATE_SWARM, body=body)
            return swarm

    @server.tool(annotations=CHANGES)
    async def swarm_join(
        ctx: Ctx,
        swarm: Swarm,
        agent: Annotated[
            str | None, Field(description="Who joins (default: you; leads may name another).")
        ] = None,
    ) -> dict[str, Any]:
        """Join a swarm (harmless if already a member: `joined` is then false); refused when
        the swarm is full."""
        body = drop_none({"agent": agent or link.caller.speaks_as})
        async with link.api(ctx) as api:
            joined: dict[str, Any] = await api.call(JOIN, path={"swarm": swarm}, body=body)
            return joined

    @server.tool(annotations=CHANGES)
    async def blackboard_post(
        ctx: Ctx,
        swarm: Swarm,
        topic: Annotated[str, Field(description="A short topic name, e.g. 'findings'.")],
        body: Annotated[str, Field(description="What to share.", min_length=1)],
    ) -> dict[str, Any]:
        """Append a post to a swarm's blackboard (append-only); its id is the cursor that
        follows it."""
        request = drop_none({"topic": topic, "body": body, "author": link.caller.speaks_as})
        async with link.api(ctx) as api:
            posted: dict[str, Any] = await api.call(POST, path={"swarm": swarm}, body=request)
            return posted

    @server.tool(annotations=READ_ONLY)
    async def blackboard_read(
        ctx: Ctx,
        swarm: Swarm,
        since: Annotated[
            int, Field(ge=0, description="The cursor: the last post id already read (0: all).")
        ] = 0,
        limit: Annotated[int | None, Field(ge=1, description="At most this many posts.")] = None,
        topic: Annotated[str | None, Field(description="Only posts of this topic.")] = None,
    ) -> dict[str, Any]:
        """A swarm's blackboard posts after the cursor `since`, oldest first, and the
        `cursor` to pass next time."""
        params = {"since": since, "limit": limit, "topic": topic}
        async with link.api(ctx) as api:
            page: dict[str, Any] = await api.call(READ, path={"swarm": swarm}, params=params)
            return page
