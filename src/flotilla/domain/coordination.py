"""Teams, swarms, the blackboard and checkpoints: the types and their rules, without I/O.

A team is a named group of agents, each in one role (team-lead, worker, ...), whose
workers work in one repository. A swarm groups agents around a goal, up to a
maximum size. The blackboard is a swarm's append-only board of posts; a post's id
is the cursor a reader passes back as `since`. A checkpoint names a point of a
worker's work (branch, commit, agent session) that a new worker can continue from.

Every check raises UsageError (or InvalidName) with one line saying what is wrong
and how to fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flotilla.domain.errors import InvalidName, UsageError
from flotilla.domain.names import validate_name
from flotilla.domain.roles import Role, parse_role

MAX_SWARM_SIZE = 1000
MAX_GOAL_CHARS = 4000
MAX_POST_CHARS = 64 * 1024
MAX_NOTES_CHARS = 16 * 1024
MAX_PROMPT_CHARS = 256 * 1024
DEFAULT_READ_LIMIT = 100
MAX_READ_LIMIT = 1000


def check_name(kind: str, name: str) -> str:
    """A team, swarm, agent, topic or checkpoint name: the worker-name rules (one path
    segment, a valid git ref component), with the message naming what it is."""
    try:
        return validate_name(name)
    except InvalidName as exc:
        raise InvalidName(str(exc).replace("worker name", f"{kind} name", 1)) from exc


def check_text(what: str, text: str, limit: int, *, required: bool = True) -> str:
    if required and not text.strip():
        raise UsageError(f"the {what} is empty: give some text")
    if len(text) > limit:
        raise UsageError(f"the {what} is {len(text)} characters long: keep it under {limit}")
    return text


def check_max_size(max_size: int) -> int:
    if not 1 <= max_size <= MAX_SWARM_SIZE:
        raise UsageError(
            f"a swarm's maximum size must be between 1 and {MAX_SWARM_SIZE}, not {max_size}"
        )
    return max_size


def check_cursor(since: int) -> int:
    if since < 0:
        raise UsageError(f"the cursor (since) must be 0 or a post id, not {since}")
    return since


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_READ_LIMIT:
        raise UsageError(f"the read limit must be between 1 and {MAX_READ_LIMIT}, not {limit}")
    return limit


# -- teams ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    team: str
    agent: str
    role: Role
    joined_at: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "role": self.role.value}


@dataclass(frozen=True)
class Team:
    name: str
    project: str  # the repository its workers are created in
    created_at: float
    created_by: str | None = None
    members: tuple[Member, ...] = ()

    def member(self, agent: str) -> Member | None:
        return next((m for m in self.members if m.agent == agent), None)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["members"] = [m.to_dict() for m in self.members]
        return out


def new_team(
    name: str, project: str, now: float, *, lead: str | None = None, created_by: str | None = None
) -> Team:
    name = check_name("team", name)
    if not project:
        raise UsageError("a team needs a project: the repository its workers work in")
    members = (Member(name, check_name("agent", lead), Role.TEAM_LEAD, now),) if lead else ()
    return Team(name, project, now, created_by, members)


def new_member(team: Team, agent: str, role: str | Role, now: float) -> Member:
    agent = check_name("agent", agent)
    existing = team.member(agent)
    if existing is not None:
        raise UsageError(
            f"agent {agent!r} is already in team {team.name!r} as {existing.role.value}"
        )
    return Member(team.name, agent, parse_role(str(role)), now)


# -- swarms ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Swarm:
    id: str
    name: str
    goal: str
    max_size: int
    created_at: float
    team: str | None = None
    created_by: str | None = None
    members: tuple[str, ...] = ()
    posts: int = 0  # how many posts its blackboard holds

    @property
    def full(self) -> bool:
        return len(self.members) >= self.max_size

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["members"] = list(self.members)
        out["size"] = len(self.members)
        return out


def new_swarm(
    swarm_id: str,
    name: str,
    goal: str,
    max_size: int,
    now: float,
    *,
    team: str | None = None,
    created_by: str | None = None,
) -> Swarm:
    return Swarm(
        id=swarm_id,
        name=check_name("swarm", name),
        goal=check_text("swarm's goal", goal, MAX_GOAL_CHARS),
        max_size=check_max_size(max_size),
        created_at=now,
        team=check_name("team", team) if team is not None else None,
        created_by=created_by,
    )


def check_can_join(swarm: Swarm, agent: str) -> bool:
    """True if `agent` must be added, False if it is a member already; UsageError when full."""
    if agent in swarm.members:
        return False
    if swarm.full:
        raise UsageError(
            f"swarm {swarm.name!r} is full ({len(swarm.members)} of {swarm.max_size} members): "
            "wait until a member leaves, or create another swarm"
        )
    return True


def check_can_leave(swarm: Swarm, agent: str) -> None:
    if agent not in swarm.members:
        raise UsageError(f"agent {agent!r} is not a member of swarm {swarm.name!r}")


# -- the blackboard ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    id: int  # the cursor: ids grow strictly in the order a swarm's posts were made
    swarm: str
    author: str
    topic: str
    body: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_post(author: str, topic: str, body: str) -> tuple[str, str, str]:
    return (
        check_name("author", author),
        check_name("topic", topic),
        check_text("post", body, MAX_POST_CHARS),
    )


# -- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    id: str
    project: str
    name: str
    worker: str  # the worker it was taken of (which may be gone since)
    agent: str  # the agent kind, whose session `session_id` is
    model: str | None
    branch: str
    commit: str
    session_id: str | None
    summary: str
    notes: str
    created_at: float
    created_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_prompt(checkpoint: Checkpoint, prompt: str, *, resumed: bool) -> str:
    """The first prompt of a worker restored from `checkpoint`.

    A resumed session remembers the work, so it gets the prompt alone. A fresh
    session gets the checkpoint's summary and notes first: it starts with the files
    at the checkpoint's commit and nothing else.
    """
    if resumed:
        return prompt
    lines = [
        f"You continue work saved in checkpoint {checkpoint.name!r} of worker "
        f"{checkpoint.worker!r} (branch {checkpoint.branch}, commit {checkpoint.commit[:12]}); "
        "your worktree holds the files as they were then."
    ]
    if checkpoint.summary.strip():
        lines.append(f"Summary of the work so far:\n{checkpoint.summary.strip()}")
    if checkpoint.notes.strip():
        lines.append(f"Notes:\n{checkpoint.notes.strip()}")
    lines.append(f"Task:\n{prompt}")
    return "\n\n".join(lines)


DEFAULT_RESTORE_PROMPT = "Continue the task from where the checkpoint left off."
