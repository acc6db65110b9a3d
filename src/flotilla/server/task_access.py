"""Who may act on a task: a token for its own agent and team, a coordinator for anyone,
a local caller for the agent it names (or as "user", with a coordinator's reach).

Each refusal is an AuthError (403) naming who was refused and why.
"""

from __future__ import annotations

from flotilla.domain.roles import Role
from flotilla.domain.tasks import Task, TaskState
from flotilla.server.auth import AuthError, Principal

PERSON = "user"  # who a local caller is when it names no agent


def acting(principal: Principal, named: str | None) -> tuple[str, bool]:
    """(the agent a request acts as, whether it may act for any holder)."""
    if principal.local:
        return (named, False) if named else (PERSON, True)
    coordinator = principal.role is Role.COORDINATOR
    if named is None or named == principal.agent:
        return principal.agent, coordinator
    if coordinator:
        return named, True
    raise AuthError(
        403,
        "auth.forbidden_agent",
        f"agent {principal.agent!r} ({principal.role.value}) may act only for itself, "
        f"not for {named!r}",
    )


def on_team(principal: Principal, team: str) -> None:
    if principal.local or principal.role is Role.COORDINATOR or principal.team == team:
        return
    raise AuthError(
        403,
        "auth.forbidden_team",
        f"agent {principal.agent!r} of team {principal.team!r} may not act on the tasks "
        f"of team {team!r}",
    )


def claim_team(principal: Principal, wanted: str | None) -> str | None:
    """The queue a claim draws from: a token's own team (a coordinator's: any, or the one
    named); over the local socket, the one named or any."""
    if principal.local or principal.role is Role.COORDINATOR:
        return wanted
    on_team(principal, wanted or principal.team)
    return principal.team


def must_hold(task: Task, actor: str, override: bool, doing: str) -> None:
    """Refuse (403) an agent that would act on a task someone else holds; the store checks
    again in the move's transaction (409 if the claim changed meanwhile)."""
    if override or task.state is not TaskState.CLAIMED or task.assignee == actor:
        return
    raise AuthError(
        403,
        "auth.not_holder",
        f"task {task.id} is held by {task.assignee}, not {actor}: only its holder "
        f"(or a coordinator) may {doing} it",
    )
