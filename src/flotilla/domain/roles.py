"""Roles and what each may do: the one permission matrix of Flotilla.

Every HTTP route and MCP tool names one Permission; `allowed` decides. Change
what a role may do here and nowhere else (tests/service/test_service_roles.py spells the
expected matrix out cell by cell, so a change here is a deliberate one).
"""

from __future__ import annotations

from enum import StrEnum

from flotilla.domain.errors import UsageError


class Role(StrEnum):
    COORDINATOR = "coordinator"  # all orchestration, and the daemon's housekeeping
    TEAM_LEAD = "team-lead"  # spawn and steer workers, hand out tasks, broadcast, merge
    WORKER = "worker"  # claim and complete tasks, message, post to the blackboard
    MONITOR = "monitor"  # read-only
    MERGER = "merger"  # merge and push


class Permission(StrEnum):
    READ = "read"  # any GET: workers, results, diffs, logs, workflows, health
    SPAWN = "spawn"  # create workers (one or a batch)
    KILL = "kill"  # stop a worker, remove its worktree
    PROMPT = "prompt"  # send a follow-up prompt to a worker
    MERGE = "merge"  # merge a worker's or a batch's branch
    PUSH = "push"  # push a branch and open a pull request
    WORKFLOW_RUN = "workflow_run"  # run, cancel, resume and clean up workflows
    TASK_CREATE = "task_create"
    TASK_ASSIGN = "task_assign"
    TASK_CLAIM = "task_claim"
    TASK_COMPLETE = "task_complete"  # update, complete or fail a claimed task
    MESSAGE_SEND = "message_send"  # a direct message or a reply
    BROADCAST = "broadcast"  # a message to a whole team
    BLACKBOARD_POST = "blackboard_post"
    CHECKPOINT = "checkpoint"  # save and restore checkpoints of workers
    ADMIN = "admin"  # repair, shut the daemon down


P = Permission

MATRIX: dict[Role, frozenset[Permission]] = {
    Role.COORDINATOR: frozenset(Permission),
    Role.TEAM_LEAD: frozenset(
        {
            P.READ,
            P.SPAWN,
            P.KILL,
            P.PROMPT,
            P.MERGE,
            P.TASK_CREATE,
            P.TASK_ASSIGN,
            P.MESSAGE_SEND,
            P.BROADCAST,
            P.BLACKBOARD_POST,
            P.CHECKPOINT,
        }
    ),
    Role.WORKER: frozenset(
        {P.READ, P.TASK_CLAIM, P.TASK_COMPLETE, P.MESSAGE_SEND, P.BLACKBOARD_POST}
    ),
    Role.MONITOR: frozenset({P.READ}),
    Role.MERGER: frozenset({P.READ, P.MERGE, P.PUSH}),
}


def allowed(role: Role, permission: Permission) -> bool:
    return permission in MATRIX[role]


def roles_with(permission: Permission) -> list[Role]:
    """The roles that may do `permission`, for messages that say which role would do."""
    return [role for role in Role if allowed(role, permission)]


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise UsageError(f"unknown role {text!r}: use one of {known}") from None
