"""HTTP routes of teams, swarms, the blackboard and checkpoints.

Each route names its Permission (domain/roles.py) through `require`:

    READ             GET /teams, /teams/{team}, /swarms, /swarms/{swarm},
                     /swarms/{swarm}/posts, /checkpoints, /checkpoints/{name}
    SPAWN            POST /teams, /teams/{team}/members, /teams/{team}/spawn, /swarms
    BLACKBOARD_POST  POST /swarms/{swarm}/join, /swarms/{swarm}/leave, /swarms/{swarm}/posts
    CHECKPOINT       POST /checkpoints, /checkpoints/{name}/restore

Beyond the role, two rules of who may act, checked here: a token acts on its own
team only (a coordinator's on any), and speaks for its own agent only (a
coordinator or team lead may name another, e.g. to put a worker in a swarm). A
local caller (the CLI over the Unix socket, or any caller when auth is off) names
the agent it acts for. Errors travel like every other route's: bad input 400,
an unknown team, swarm or checkpoint 404, a refused caller 401/403.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from flotilla.domain.coordination import DEFAULT_READ_LIMIT, MAX_READ_LIMIT
from flotilla.domain.roles import MATRIX, Permission, Role
from flotilla.orchestrator.checkpoints import Checkpoints
from flotilla.orchestrator.coordination import Coordination
from flotilla.orchestrator.service import FleetService, run_blocking
from flotilla.server.auth import AuthError, Principal, require
from flotilla.server.fastlane import FastRoute

P = Permission
LOCAL_AGENT = "local"  # who a local caller is when it names no agent


class TeamBody(BaseModel):
    name: str
    project: str
    lead: str | None = None  # an agent to add as the team's lead


class MemberBody(BaseModel):
    agent: str
    role: str = Role.WORKER.value


class SpawnBody(BaseModel):
    name: str
    prompt: str
    role: str = Role.WORKER.value
    agent: str | None = None  # the agent kind (claude, codex, ...)
    model: str | None = None
    base_ref: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    depth: int = 0
    parent: str | None = None


class SwarmBody(BaseModel):
    name: str
    goal: str
    max_size: int
    team: str | None = None


class SwarmMemberBody(BaseModel):
    agent: str | None = None  # default: the caller


class PostBody(BaseModel):
    topic: str
    body: str
    author: str | None = None  # default: the caller


class CheckpointBody(BaseModel):
    name: str
    worker: str
    notes: str = ""


class RestoreBody(BaseModel):
    name: str  # the new worker's
    prompt: str | None = None
    agent: str | None = None
    model: str | None = None
    resume: bool = True
    env: dict[str, str] = Field(default_factory=dict)
    depth: int = 0
    parent: str | None = None


def _on_team(principal: Principal, team: str) -> None:
    if principal.local or principal.role is Role.COORDINATOR or principal.team == team:
        return
    raise AuthError(
        403,
        "auth.forbidden_team",
        f"agent {principal.agent!r} of team {principal.team!r} may not act on team {team!r}",
    )


def _may_grant(principal: Principal, role: str) -> None:
    """A member's role may not reach past its granter's (a worker's permissions aside): a
    team lead cannot make a coordinator, whose agents would get coordinator tokens.
    Unknown roles are the service's to refuse."""
    granted = next((r for r in Role if r.value == role), None)
    if principal.local or principal.role is Role.COORDINATOR or granted is None:
        return
    if MATRIX[granted] <= MATRIX[principal.role] | MATRIX[Role.WORKER]:
        return  # its own permissions, plus a worker's (claiming tasks is not a lead's)
    raise AuthError(
        403,
        "auth.forbidden_role",
        f"agent {principal.agent!r} ({principal.role.value}) may not grant the role "
        f"{role!r}: it has permissions {principal.role.value!r} lacks",
    )


def _acting_as(principal: Principal, named: str | None) -> str:
    """The agent a request acts for: the token's own, or one it may speak for."""
    if principal.local:
        return named or LOCAL_AGENT
    if named is None or named == principal.agent:
        return principal.agent
    if principal.role in (Role.COORDINATOR, Role.TEAM_LEAD):
        return named
    raise AuthError(
        403,
        "auth.forbidden_agent",
        f"agent {principal.agent!r} ({principal.role.value}) may act only for itself, "
        f"not for {named!r}",
    )


def _creator(principal: Principal) -> str | None:
    return None if principal.local else principal.agent


def coordination_router(
    service: FleetService,
    coordination: Coordination | None = None,
    checkpoints: Checkpoints | None = None,
) -> APIRouter:
    """The routes over `coordination` and `checkpoints` (made over `service` if not given,
    e.g. to pass ones whose `on_event` publishes on the bus)."""
    router = APIRouter()
    teams = coordination or Coordination(service)
    saved = checkpoints or Checkpoints(service)

    # -- teams ------------------------------------------------------------------------------

    @router.post("/teams")
    async def create_team(
        body: TeamBody, who: Principal = Depends(require(P.SPAWN))
    ) -> dict[str, Any]:
        _on_team(who, body.name)
        return dict(
            await run_blocking(
                lambda: teams.create_team(
                    body.name, body.project, lead=body.lead, created_by=_creator(who)
                )
            )
        )

    @router.get("/teams", dependencies=[Depends(require(P.READ))])
    async def list_teams() -> list[dict[str, Any]]:
        return list(await run_blocking(teams.list_teams))

    @router.get("/teams/{team}", dependencies=[Depends(require(P.READ))])
    async def team_status(team: str) -> dict[str, Any]:
        """The team, its members and their workers' states."""
        return dict(await run_blocking(teams.team_status, team))

    @router.post("/teams/{team}/members")
    async def add_member(
        team: str, body: MemberBody, who: Principal = Depends(require(P.SPAWN))
    ) -> dict[str, Any]:
        _on_team(who, team)
        _may_grant(who, body.role)
        return dict(await run_blocking(teams.add_member, team, body.agent, body.role))

    @router.post("/teams/{team}/spawn")
    async def spawn(
        team: str, body: SpawnBody, who: Principal = Depends(require(P.SPAWN))
    ) -> dict[str, Any]:
        """Create a worker in the team's project and record it as a member of the team."""
        _on_team(who, team)
        _may_grant(who, body.role)
        return dict(
            await run_blocking(
                lambda: teams.team_spawn(
                    team,
                    body.name,
                    body.prompt,
                    role=body.role,
                    agent=body.agent,
                    model=body.model,
                    base_ref=body.base_ref,
                    env=body.env,
                    depth=body.depth,
                    parent=body.parent,
                )
            )
        )

    # -- swarms -----------------------------------------------------------------------------

    @router.post("/swarms")
    async def create_swarm(
        body: SwarmBody, who: Principal = Depends(require(P.SPAWN))
    ) -> dict[str, Any]:
        if body.team is not None:
            _on_team(who, body.team)
        return dict(
            await run_blocking(
                lambda: teams.create_swarm(
                    body.name, body.goal, body.max_size, team=body.team, created_by=_creator(who)
                )
            )
        )

    @router.get("/swarms", dependencies=[Depends(require(P.READ))])
    async def list_swarms(team: str | None = None) -> list[dict[str, Any]]:
        return list(await run_blocking(teams.list_swarms, team))

    @router.get("/swarms/{swarm}", dependencies=[Depends(require(P.READ))])
    async def get_swarm(swarm: str) -> dict[str, Any]:
        return dict(await run_blocking(teams.get_swarm, swarm))

    @router.post("/swarms/{swarm}/join")
    async def join_swarm(
        swarm: str, body: SwarmMemberBody, who: Principal = Depends(require(P.BLACKBOARD_POST))
    ) -> dict[str, Any]:
        """Join (a no-op for a member: `joined` false); 400 when the swarm is full."""
        return dict(await run_blocking(teams.join_swarm, swarm, _acting_as(who, body.agent)))

    @router.post("/swarms/{swarm}/leave")
    async def leave_swarm(
        swarm: str, body: SwarmMemberBody, who: Principal = Depends(require(P.BLACKBOARD_POST))
    ) -> dict[str, Any]:
        return dict(await run_blocking(teams.leave_swarm, swarm, _acting_as(who, body.agent)))

    # -- the blackboard ------------------------------------------------------------------------

    @router.post("/swarms/{swarm}/posts")
    async def post(
        swarm: str, body: PostBody, who: Principal = Depends(require(P.BLACKBOARD_POST))
    ) -> dict[str, Any]:
        """Append a post; its `id` is the cursor that follows it."""
        return await post_as(teams, who, swarm, body)

    @router.get("/swarms/{swarm}/posts", dependencies=[Depends(require(P.READ))])
    async def read(
        swarm: str,
        since: int = Query(0, description="the cursor: the id of the last post already read"),
        limit: int = Query(DEFAULT_READ_LIMIT, description=f"at most {MAX_READ_LIMIT}"),
        topic: str | None = None,
    ) -> dict[str, Any]:
        """Posts after `since`, oldest first, and the `cursor` to pass next time."""
        return dict(await run_blocking(teams.read, swarm, since, limit, topic))

    # -- checkpoints ----------------------------------------------------------------------------

    @router.post("/checkpoints")
    async def create_checkpoint(
        project: str, body: CheckpointBody, who: Principal = Depends(require(P.CHECKPOINT))
    ) -> dict[str, Any]:
        """Save a worker's branch, commit (uncommitted work committed first), session id,
        summary and notes under a name unique in the project."""
        return dict(
            await run_blocking(
                lambda: saved.create(
                    project, body.worker, body.name, notes=body.notes, created_by=_creator(who)
                )
            )
        )

    @router.get("/checkpoints", dependencies=[Depends(require(P.READ))])
    async def list_checkpoints(project: str) -> list[dict[str, Any]]:
        return list(await run_blocking(saved.list_checkpoints, project))

    @router.get("/checkpoints/{name}", dependencies=[Depends(require(P.READ))])
    async def get_checkpoint(name: str, project: str) -> dict[str, Any]:
        return dict(await run_blocking(saved.get, project, name))

    @router.post("/checkpoints/{name}/restore", dependencies=[Depends(require(P.CHECKPOINT))])
    async def restore_checkpoint(name: str, project: str, body: RestoreBody) -> dict[str, Any]:
        """A new worker that continues from the checkpoint (its session resumed if it can)."""
        return dict(
            await run_blocking(
                lambda: saved.restore(
                    project,
                    name,
                    body.name,
                    body.prompt,
                    agent=body.agent,
                    model=body.model,
                    env=body.env,
                    resume=body.resume,
                    depth=body.depth,
                    parent=body.parent,
                )
            )
        )

    return router


async def post_as(
    teams: Coordination, who: Principal, swarm: str, body: PostBody
) -> dict[str, Any]:
    """POST /swarms/{swarm}/posts, for the route and the fast lane alike."""
    author = _acting_as(who, body.author)
    return await teams.post_soon(swarm, author, body.topic, body.body)


def coordination_fast_routes(teams: Coordination) -> list[FastRoute]:
    """The blackboard post in the fast lane (server/fastlane.py): agents post often."""

    async def post(who: Principal, params: dict[str, str], _: dict[str, str], body: Any) -> Any:
        return await post_as(teams, who, params["swarm"], body)

    return [FastRoute("POST", "/swarms/{swarm}/posts", post, PostBody)]
