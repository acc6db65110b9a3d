"""What an agent Flotilla launches knows of the fleet: where it is, who it is, and a token.

Each turn's environment gets (see `AgentAccess.env_for`):

    FLOTILLA_SOCKET  the daemon's Unix socket (always)
    FLOTILLA_URL     the daemon's TCP URL, only while `fleet serve` serves one
    FLOTILLA_TOKEN   a JWT naming the agent, its team and its role, valid for the
                     worker's timeout plus a margin (when the daemon can sign tokens)
    FLOTILLA_WORKER, FLOTILLA_TEAM, FLOTILLA_ROLE

So an agent can call the API and the MCP tools with no set-up. Team and role come
from the store, never from the environment a worker was asked for (anyone who may
spawn could otherwise ask for a coordinator's token): a team member's role in its
team (`team_spawn`), else role `worker` in settings["team"], the worker's batch, or
`default`. Signing is the server's business: the daemon passes its signer in, so
this package imports nothing of `server`. The token goes into the agent's process
environment only: never into env.json (`save_env` drops it), the store or a log.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from flotilla.counters import count
from flotilla.domain.errors import FlotillaError
from flotilla.domain.roles import Role
from flotilla.domain.worker import Worker
from flotilla.store.base import Store
from flotilla.store.coordination_sql import coordination_store

log = logging.getLogger(__name__)

URL_ENV = "FLOTILLA_URL"
SOCKET_ENV = "FLOTILLA_SOCKET"
TOKEN_ENV = "FLOTILLA_TOKEN"
WORKER_ENV = "FLOTILLA_WORKER"
TEAM_ENV = "FLOTILLA_TEAM"
ROLE_ENV = "FLOTILLA_ROLE"
ACCESS_VARS = (URL_ENV, SOCKET_ENV, TOKEN_ENV, WORKER_ENV, TEAM_ENV, ROLE_ENV)
SECRET_VARS = (TOKEN_ENV,)  # never written to disk, never handed down to another agent

DEFAULT_TEAM = "default"
TOKEN_MARGIN_S = 600.0  # the token outlives the turn's timeout by this much
MAX_TOKEN_S = 7 * 24 * 3600.0  # a very long timeout still gets a token that ends

# (agent, team, role, ttl_s) -> (token, expires_at): `Tokens.issue` of the daemon's authority.
Signer = Callable[[str, str, Role, int], tuple[str, int]]
# The (team, role) pairs a worker holds as a team member, in the worker's project.
Memberships = Callable[[Worker], list[tuple[str, Role]]]


@dataclass(frozen=True)
class Identity:
    agent: str
    team: str
    role: Role


def identity_of(worker: Worker, memberships: list[tuple[str, Role]]) -> Identity:
    """Who the worker's agent is: its membership if it has one (the team in settings["team"]
    first, else the first by name), else a `worker` of its named team, batch or `default`."""
    named = worker.settings.get("team")
    named = named if isinstance(named, str) and named else None
    if memberships:
        chosen = next((m for m in memberships if m[0] == named), None)
        team, role = chosen or min(memberships, key=lambda m: m[0])
        return Identity(worker.name, team, role)
    return Identity(worker.name, named or worker.batch or DEFAULT_TEAM, Role.WORKER)


def token_ttl(timeout_s: float, margin_s: float = TOKEN_MARGIN_S) -> int:
    return math.ceil(min(max(timeout_s, 0.0) + margin_s, MAX_TOKEN_S))


def store_memberships(store: Store) -> Memberships:
    """Memberships read from the teams in `store` (none for a store without teams)."""

    def lookup(worker: Worker) -> list[tuple[str, Role]]:
        try:
            teams = coordination_store(store)
            members = teams.memberships(worker.name)
            return [
                (m.team, m.role)
                for m in members
                if teams.get_team(m.team).project == worker.project
            ]
        except FlotillaError:
            count("agent_env.memberships_unreadable")
            log.warning("the teams of %s could not be read: it runs as a worker", worker.name)
            return []

    return lookup


def _no_memberships(worker: Worker) -> list[tuple[str, Role]]:
    return []


@dataclass(frozen=True)
class AgentAccess:
    """How agents reach the fleet; made by the daemon, handed to the supervisor."""

    socket: Path
    url: str | None = None
    sign: Signer | None = None  # None: the daemon has no usable secret, so no token
    memberships: Memberships = _no_memberships
    margin_s: float = TOKEN_MARGIN_S

    @classmethod
    def for_store(
        cls, store: Store, *, socket: Path, url: str | None = None, sign: Signer | None = None
    ) -> AgentAccess:
        return cls(socket=socket, url=url, sign=sign, memberships=store_memberships(store))

    def identity(self, worker: Worker) -> Identity:
        return identity_of(worker, self.memberships(worker))

    def env_for(self, worker: Worker, timeout_s: float) -> dict[str, str]:
        """The variables of one turn of `worker` (a fresh token each turn)."""
        who = self.identity(worker)
        env = {
            SOCKET_ENV: str(self.socket),
            WORKER_ENV: who.agent,
            TEAM_ENV: who.team,
            ROLE_ENV: who.role.value,
        }
        if self.url:
            env[URL_ENV] = self.url
        if self.sign is not None:
            token, _ = self.sign(who.agent, who.team, who.role, token_ttl(timeout_s, self.margin_s))
            env[TOKEN_ENV] = token
        return env


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """`env` less the variables that must not be stored or passed to another agent."""
    return {k: v for k, v in env.items() if k not in SECRET_VARS}


def with_access(
    env: Mapping[str, str], worker: Worker, timeout_s: float, access: AgentAccess | None
) -> dict[str, str]:
    """A turn's environment: `env` (the saved one, with config and FLOTILLA_* added) with
    no token inherited from whoever created the worker, and this agent's own access,
    which replaces any access variables `env` had (they may name another agent or a
    daemon that is gone)."""
    out = without_secrets(env)
    if access is None:
        return out
    for name in ACCESS_VARS:
        out.pop(name, None)
    out.update(access.env_for(worker, timeout_s))
    return out
