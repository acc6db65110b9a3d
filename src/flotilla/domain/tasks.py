"""Coordination tasks: their states, legal moves, pick order, dependency readiness,
capability match and leases, as pure functions.

A task is queued until one agent claims it (or a lead assigns it); a claim is a
lease the holder keeps alive by heartbeats. Only the holder (or a coordinator)
finishes it. Whether a queued task waits on its dependencies is derived from
their states, never stored, so it cannot go stale. The store's claim query
implements `pick_next` in SQL; a test checks that the two agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flotilla.domain.errors import IllegalTransition, UsageError

MAX_TITLE_LENGTH = 200
MAX_LABEL_LENGTH = 64
MAX_LABELS = 32
MAX_DEPENDENCIES = 100
PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_LEASE_S = 7 * 24 * 3600.0
DEFAULT_LEASE_S = 300.0
# Letters, digits and . _ - : / (e.g. "python", "area/db", "p:high"); no spaces or commas,
# so a label reads the same in a URL query, a CLI flag and a log line.
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._:/-]*[A-Za-z0-9])?$")


class TaskState(StrEnum):
    QUEUED = "queued"  # waiting for a claimer (and perhaps for its dependencies)
    CLAIMED = "claimed"  # held by one agent under a lease
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskState.DONE, TaskState.CANCELLED)


_S = TaskState
# CLAIMED -> QUEUED: the lease expired, or the holder released it.
# FAILED -> QUEUED: a lead puts a failed task back in the queue to be tried again.
# DONE and CANCELLED are final: a task's result is never overwritten.
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _S.QUEUED: frozenset({_S.CLAIMED, _S.CANCELLED}),
    _S.CLAIMED: frozenset({_S.QUEUED, _S.DONE, _S.FAILED, _S.CANCELLED}),
    _S.FAILED: frozenset({_S.QUEUED, _S.CANCELLED}),
    _S.DONE: frozenset(),
    _S.CANCELLED: frozenset(),
}


def can_task_transition(current: TaskState, target: TaskState) -> bool:
    return target in TASK_TRANSITIONS[current]


def check_task_transition(task_id: str, current: TaskState, target: TaskState) -> TaskState:
    """Return `target` if the move is legal, else raise IllegalTransition."""
    if not can_task_transition(current, target):
        raise IllegalTransition(f"task {task_id} is {current} and cannot become {target}")
    return target


def to_task_state(value: TaskState | str) -> TaskState:
    try:
        return TaskState(value)
    except ValueError as exc:
        choices = ", ".join(s.value for s in TaskState)
        raise UsageError(f"{value!r} is not a task state: use one of {choices}") from exc


class NotHolder(IllegalTransition):
    """The caller does not hold the task's claim (someone else does, or nobody)."""


class EventKind(StrEnum):
    """What one entry of a task's (append-only) history records."""

    CREATED = "created"
    CLAIMED = "claimed"
    ASSIGNED = "assigned"
    UPDATED = "updated"
    NOTE = "note"
    RELEASED = "released"
    LEASE_EXPIRED = "lease_expired"
    DONE = "done"
    FAILED = "failed"
    REQUEUED = "requeued"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Task:
    id: str
    team: str
    title: str
    description: str = ""
    labels: tuple[str, ...] = ()  # tags, for boards and filters
    priority: int = 0  # higher is picked first
    depends_on: tuple[str, ...] = ()  # ids of tasks that must be done before this one is claimed
    agent_kind: str | None = None  # only this agent kind may claim it; None: any
    requires: tuple[str, ...] = ()  # capability labels a claimer must have, all of them
    state: TaskState = TaskState.QUEUED
    assignee: str | None = None  # the holder while claimed; who finished it afterwards
    lease_expires_at: float | None = None
    attempts: int = 0  # how many times it was claimed or assigned
    result: Any = None  # what the holder reported (any JSON value)
    error: str | None = None  # why it failed
    created_by: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    claimed_at: float | None = None
    heartbeat_at: float | None = None
    ended_at: float | None = None
    version: int = 0  # +1 on every stored change: compare-and-set for updates

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "team": self.team,
            "title": self.title,
            "description": self.description,
            "labels": list(self.labels),
            "priority": self.priority,
            "depends_on": list(self.depends_on),
            "agent_kind": self.agent_kind,
            "requires": list(self.requires),
            "state": self.state.value,
            "assignee": self.assignee,
            "lease_expires_at": self.lease_expires_at,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "claimed_at": self.claimed_at,
            "heartbeat_at": self.heartbeat_at,
            "ended_at": self.ended_at,
            "version": self.version,
        }


@dataclass(frozen=True)
class TaskEvent:
    """One entry of a task's history: what happened, who did it, in one readable line."""

    id: int
    task_id: str
    at: float
    kind: EventKind
    actor: str | None
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "at": self.at,
            "kind": self.kind.value,
            "actor": self.actor,
            "message": self.message,
            "detail": self.detail,
        }


# -- validation ----------------------------------------------------------------------


def check_title(title: str) -> str:
    text = title.strip()
    if not text:
        raise UsageError("the task title is empty: give a short title saying what to do")
    if len(text) > MAX_TITLE_LENGTH:
        raise UsageError(
            f"the task title is {len(text)} characters, over {MAX_TITLE_LENGTH}: "
            "shorten it and put the rest in the description"
        )
    return text


def check_name(value: str, what: str) -> str:
    """A team, agent or agent-kind name: non-empty, no surrounding spaces."""
    text = value.strip()
    if not text or len(text) > 128:
        raise UsageError(f"the {what} {value!r} is not valid: give 1 to 128 characters")
    return text


def check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise UsageError(f"task priority {priority!r} is not an integer")
    low, high = PRIORITY_RANGE
    if not low <= priority <= high:
        raise UsageError(f"task priority {priority} is outside {low}..{high}")
    return priority


def normalize_labels(labels: Iterable[str], what: str = "label") -> tuple[str, ...]:
    """Labels stripped, checked and deduplicated, first occurrence first."""
    if isinstance(labels, str):
        raise UsageError(f"give the {what}s as a list, not the single string {labels!r}")
    out: list[str] = []
    for raw in labels:
        label = raw.strip() if isinstance(raw, str) else raw
        if not isinstance(label, str) or len(label) > MAX_LABEL_LENGTH or not _LABEL.match(label):
            raise UsageError(
                f"{what} {raw!r} is not valid: use letters, digits and . _ - : / "
                f"(at most {MAX_LABEL_LENGTH} characters, starting and ending with a letter "
                "or digit)"
            )
        if label not in out:
            out.append(label)
    if len(out) > MAX_LABELS:
        raise UsageError(f"a task has {len(out)} {what}s, over {MAX_LABELS}")
    return tuple(out)


def normalize_dependencies(task_ids: Iterable[str]) -> tuple[str, ...]:
    if isinstance(task_ids, str):
        raise UsageError(f"give depends_on as a list of task ids, not the string {task_ids!r}")
    out: list[str] = []
    for task_id in task_ids:
        if not isinstance(task_id, str) or not task_id.strip():
            raise UsageError(f"dependency {task_id!r} is not a task id")
        if task_id.strip() not in out:
            out.append(task_id.strip())
    if len(out) > MAX_DEPENDENCIES:
        raise UsageError(f"a task depends on {len(out)} tasks, over {MAX_DEPENDENCIES}")
    return tuple(out)


def lease_deadline(now: float, lease_s: float) -> float:
    """When a lease taken (or renewed) at `now` for `lease_s` seconds runs out."""
    if isinstance(lease_s, bool) or not isinstance(lease_s, int | float):
        raise UsageError(f"lease {lease_s!r} is not a number of seconds")
    if not math.isfinite(lease_s) or not 0 < lease_s <= MAX_LEASE_S:
        raise UsageError(f"lease {lease_s} s is not in (0, {MAX_LEASE_S:.0f}] seconds")
    return now + float(lease_s)


def lease_expired(task: Task, now: float) -> bool:
    return (
        task.state is TaskState.CLAIMED
        and task.lease_expires_at is not None
        and task.lease_expires_at < now
    )


# -- holders -------------------------------------------------------------------------------


def check_holder(task: Task, actor: str, *, coordinator: bool = False, doing: str) -> None:
    """Raise NotHolder unless `actor` holds `task`'s claim (a coordinator may act for anyone)."""
    if task.state is not TaskState.CLAIMED:
        if coordinator:
            return
        raise NotHolder(f"task {task.id} is {task.state}, not claimed: nobody holds it to {doing}")
    if coordinator or task.assignee == actor:
        return
    raise NotHolder(
        f"task {task.id} is held by {task.assignee}, not {actor}: only the holder "
        f"(or a coordinator) may {doing} it"
    )


# -- dependencies ----------------------------------------------------------------------------


class Readiness(StrEnum):
    READY = "ready"  # every dependency is done
    WAITING = "waiting"  # some dependency is not finished yet
    BLOCKED = "blocked"  # some dependency failed or was cancelled


def readiness(dependency_states: Iterable[TaskState]) -> Readiness:
    states = list(dependency_states)
    if any(s in (TaskState.FAILED, TaskState.CANCELLED) for s in states):
        return Readiness.BLOCKED
    if all(s is TaskState.DONE for s in states):
        return Readiness.READY
    return Readiness.WAITING


def find_cycle(
    task_id: str, depends_on: Sequence[str], deps_of: Mapping[str, Sequence[str]]
) -> tuple[str, ...] | None:
    """The cycle `task_id -> ... -> task_id` that giving it `depends_on` would close, if any.

    `deps_of` maps other tasks to their dependencies (its entry for `task_id`, if any,
    is ignored). Iterative depth-first search, so the depth of the graph is unlimited.
    """
    if task_id in depends_on:
        return (task_id, task_id)
    parent: dict[str, str] = {}  # each reached task -> the task that led to it
    stack: list[str] = []
    for dep in depends_on:
        if dep not in parent:
            parent[dep] = task_id
            stack.append(dep)
    while stack:
        node = stack.pop()
        for dep in deps_of.get(node, ()):
            if dep == task_id:
                path = [node]
                while path[-1] != task_id:
                    path.append(parent[path[-1]])
                return (*reversed(path), task_id)
            if dep not in parent:
                parent[dep] = node
                stack.append(dep)
    return None


def describe_cycle(cycle: Sequence[str]) -> str:
    return " -> ".join(cycle)


# -- capability and pick order ---------------------------------------------------------------


def capability_matches(task: Task, agent_kind: str | None, labels: Iterable[str]) -> bool:
    """Whether a claimer of `agent_kind` having the capability `labels` may take `task`."""
    if task.agent_kind is not None and task.agent_kind != agent_kind:
        return False
    return set(task.requires) <= set(labels)


def pick_key(task: Task) -> tuple[int, float, str]:
    """Order of claiming: highest priority first, then oldest, then id (for a total order)."""
    return (-task.priority, task.created_at, task.id)


def claimable(
    task: Task,
    state_of: Mapping[str, TaskState],
    *,
    agent_kind: str | None = None,
    labels: Iterable[str] = (),
    team: str | None = None,
) -> bool:
    """Whether a claimer may take `task` now. `state_of` maps task ids to their states; a
    dependency missing from it counts as not done."""
    if task.state is not TaskState.QUEUED:
        return False
    if team is not None and task.team != team:
        return False
    if not capability_matches(task, agent_kind, labels):
        return False
    return all(state_of.get(dep) is TaskState.DONE for dep in task.depends_on)


def pick_next(
    tasks: Iterable[Task],
    *,
    agent_kind: str | None = None,
    labels: Iterable[str] = (),
    team: str | None = None,
) -> Task | None:
    """The task a claimer gets from `tasks` (all of them, for dependency states), or None."""
    pool = list(tasks)
    state_of = {t.id: t.state for t in pool}
    wanted = tuple(labels)
    candidates = [
        t for t in pool if claimable(t, state_of, agent_kind=agent_kind, labels=wanted, team=team)
    ]
    return min(candidates, key=pick_key, default=None)
