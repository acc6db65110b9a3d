"""Teams, swarms and the blackboard as a service: what the HTTP API, MCP tools and CLI ask.

Every method answers a plain dict (the same for the API, the CLI's --json and MCP).
Input is checked before anything is stored; roles and permissions are the front
ends' business (see server/routes_coordination.py), this layer only records who
acted. `on_event(kind, payload)` is told of every stored change, for the bus; its
failures are counted, never raised into the caller's change.

A team's workers are ordinary workers of the team's project: `team_spawn` first
reserves the name as a team member, then creates the worker through
FleetService.create_worker, and takes the reservation back if that fails, so
nothing is half made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from flotilla import counters
from flotilla.bus.envelope import Event
from flotilla.bus.hooks import payload_envelope
from flotilla.bus.transport import Transport
from flotilla.domain.coordination import (
    DEFAULT_READ_LIMIT,
    Post,
    check_name,
    check_post,
    new_member,
    new_swarm,
    new_team,
)
from flotilla.domain.roles import Role, parse_role
from flotilla.domain.worker import Worker
from flotilla.orchestrator.creation import CreateRequest
from flotilla.orchestrator.service import FleetService
from flotilla.store.bus_sql import append_many_in
from flotilla.store.coordination_sql import CoordinationStore, PostDraft, coordination_store
from flotilla.workspace.repo import find_project

log = logging.getLogger(__name__)

OnEvent = Callable[[str, dict[str, Any]], None]
TEAM_ENV = "FLOTILLA_TEAM"  # a spawned worker's team and role, in its agent's environment
ROLE_ENV = "FLOTILLA_ROLE"


def _worker_brief(worker: Worker | None) -> dict[str, Any] | None:
    if worker is None:
        return None
    return {
        "state": worker.state.value,
        "outcome": worker.outcome.value if worker.outcome else None,
        "agent": worker.agent,
        "branch": worker.branch,
        "input_tokens": worker.input_tokens,
        "output_tokens": worker.output_tokens,
        "cost_usd": worker.cost_usd,
        "error": worker.error,
    }


class Coordination:
    """Teams (with roles), swarms and their blackboards over one FleetService."""

    def __init__(
        self,
        service: FleetService,
        *,
        clock: Callable[[], float] = time.time,
        on_event: OnEvent | None = None,
        bus: Transport | None = None,
    ) -> None:
        """`bus`: where posts' events go in the posts' own transactions (`post_soon`)."""
        self.service = service
        self.store: CoordinationStore = coordination_store(service.store)
        self.clock = clock
        self.on_event = on_event
        self.bus = bus
        self._writes = self.store.group_commit()

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, payload)
        except Exception:  # the change is stored; a listener's failure must not undo it
            counters.count("coordination.event_failed")
            log.exception("publishing %s failed", kind)

    # -- teams ------------------------------------------------------------------------------

    def create_team(
        self, name: str, project: str, *, lead: str | None = None, created_by: str | None = None
    ) -> dict[str, Any]:
        planned = new_team(name, project, self.clock(), lead=lead, created_by=created_by)
        # Workers are keyed by the repository's main root, so the team is too.
        root = str(find_project(Path(project)))
        team = self.store.create_team(dataclasses.replace(planned, project=root))
        self._emit("team.created", team.to_dict())
        return team.to_dict()

    def list_teams(self) -> list[dict[str, Any]]:
        return [team.to_dict() for team in self.store.list_teams()]

    def add_member(self, team: str, agent: str, role: str) -> dict[str, Any]:
        current = self.store.get_team(check_name("team", team))
        member = self.store.add_member(new_member(current, agent, role, self.clock()))
        self._emit("team.member_added", member.to_dict())
        return member.to_dict()

    def team_status(self, team: str) -> dict[str, Any]:
        """The team and each member with its worker's state (None for members that are not
        workers of the team's project, such as a person leading it)."""
        current = self.store.get_team(check_name("team", team))
        workers = {w.name: w for w in self.service.store.list_workers(project=current.project)}
        members = [
            {**m.to_dict(), "worker": _worker_brief(workers.get(m.agent))} for m in current.members
        ]
        states: dict[str, int] = {}
        for member in members:
            brief = member["worker"]
            if brief is not None:
                states[brief["state"]] = states.get(brief["state"], 0) + 1
        return {**current.to_dict(), "members": members, "worker_states": states}

    def team_spawn(
        self,
        team: str,
        name: str,
        prompt: str,
        *,
        role: str = Role.WORKER.value,
        agent: str | None = None,
        model: str | None = None,
        base_ref: str | None = None,
        env: Mapping[str, str] | None = None,
        depth: int = 0,
        parent: str | None = None,
    ) -> dict[str, Any]:
        """A new worker in the team's project, recorded as a member of `team` in `role`."""
        current = self.store.get_team(check_name("team", team))
        member = new_member(current, name, parse_role(role), self.clock())
        self.store.add_member(member)  # reserves the name: a second spawn of it fails here
        request = CreateRequest(
            project=current.project,
            name=member.agent,
            prompt=prompt,
            agent=agent,
            model=model,
            base_ref=base_ref,
            depth=depth,
            parent=parent,
            env={**(env or {}), TEAM_ENV: current.name, ROLE_ENV: member.role.value},
        )
        try:
            worker = self.service.create_worker(request)
        except BaseException:
            counters.count("coordination.spawn_rolled_back")
            self.store.remove_member(current.name, member.agent)
            raise
        out = {"team": current.name, "member": member.to_dict(), "worker": worker.to_dict()}
        self._emit("team.spawned", {"team": current.name, **member.to_dict()})
        return out

    # -- swarms ------------------------------------------------------------------------------

    def create_swarm(
        self,
        name: str,
        goal: str,
        max_size: int,
        *,
        team: str | None = None,
        created_by: str | None = None,
    ) -> dict[str, Any]:
        swarm = new_swarm(
            secrets.token_hex(8),
            name,
            goal,
            max_size,
            self.clock(),
            team=team,
            created_by=created_by,
        )
        stored = self.store.create_swarm(swarm)
        self._emit("swarm.created", stored.to_dict())
        return stored.to_dict()

    def list_swarms(self, team: str | None = None) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.store.list_swarms(team)]

    def get_swarm(self, name: str) -> dict[str, Any]:
        return self.store.get_swarm(check_name("swarm", name)).to_dict()

    def join_swarm(self, name: str, agent: str) -> dict[str, Any]:
        """Joining twice is harmless (`joined` is then false); a full swarm is refused."""
        swarm, joined = self.store.join_swarm(
            check_name("swarm", name), check_name("agent", agent), self.clock()
        )
        if joined:
            self._emit("swarm.joined", {"swarm": swarm.name, "agent": agent})
        return {**swarm.to_dict(), "joined": joined}

    def leave_swarm(self, name: str, agent: str) -> dict[str, Any]:
        swarm = self.store.leave_swarm(check_name("swarm", name), check_name("agent", agent))
        self._emit("swarm.left", {"swarm": swarm.name, "agent": agent})
        return swarm.to_dict()

    # -- the blackboard -------------------------------------------------------------------------

    def post(self, swarm: str, author: str, topic: str, body: str) -> dict[str, Any]:
        author, topic, body = check_post(author, topic, body)
        stored = self.store.post(check_name("swarm", swarm), author, topic, body, self.clock())
        self._emit("blackboard.posted", stored.to_dict())
        return stored.to_dict()

    async def post_soon(self, swarm: str, author: str, topic: str, body: str) -> dict[str, Any]:
        """`post` from the event loop. With a bus, the post and its `blackboard.posted`
        event are written in one transaction, shared with the other posts waiting at that
        moment (store/group_commit.py), and the bus is only woken."""
        author, topic, body = check_post(author, topic, body)
        swarm = check_name("swarm", swarm)
        bus = self.bus
        if bus is None:
            return await asyncio.to_thread(self.post, swarm, author, topic, body)
        draft = PostDraft(swarm, author, topic, body, self.clock())
        posted, event = await self._writes.add(self._post_many, draft)
        bus.notify((event,))
        return posted.to_dict()

    def _post_many(self, conn: Connection, drafts: list[PostDraft]) -> list[tuple[Post, Event]]:
        """A group commit's posts and their `blackboard.posted` events, all at once."""
        posts = self.store.post_many_in(conn, drafts)
        envelopes = [payload_envelope("blackboard.posted", p.to_dict()) for p in posts]
        return list(zip(posts, append_many_in(conn, envelopes), strict=True))

    def read(
        self,
        swarm: str,
        since: int = 0,
        limit: int = DEFAULT_READ_LIMIT,
        topic: str | None = None,
    ) -> dict[str, Any]:
        """Posts after cursor `since`, oldest first; `cursor` is what to pass next time (the
        last post's id, or `since` again when there is nothing new)."""
        if topic is not None:
            topic = check_name("topic", topic)
        posts = self.store.read(check_name("swarm", swarm), since, limit, topic)
        cursor = posts[-1].id if posts else since
        return {"swarm": swarm, "posts": [p.to_dict() for p in posts], "cursor": cursor}
