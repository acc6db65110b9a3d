"""The task tables as SQLAlchemy Core objects, on the store's one `metadata`, and the
mapping between a task row and the domain's Task.

A task row carries its labels, requirements and dependencies as JSON (so one row
read gives the whole Task); the side tables hold the same facts relationally, for
the claim query (requirements met?), the dependency counter and the label filter.
Both are written in the same transaction. Migration r0003_tasks builds the same
tables; the drift test compares.

Below the tables: the statements every move shares (the claim, the history append,
the side rows), built once and reused, and the checks over the dependency graph.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flotilla.domain.errors import IllegalTransition, UsageError
from flotilla.domain.tasks import (
    EventKind,
    Readiness,
    Task,
    TaskEvent,
    TaskState,
    describe_cycle,
    find_cycle,
    readiness,
)
from flotilla.store.codec import dump_json
from flotilla.store.schema import metadata

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team", sa.String(128), nullable=False),
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("labels", sa.Text(), nullable=False),  # JSON list
    sa.Column("priority", sa.Integer(), nullable=False),
    sa.Column("depends_on", sa.Text(), nullable=False),  # JSON list of task ids
    sa.Column("agent_kind", sa.String(64), nullable=True),
    sa.Column("requires", sa.Text(), nullable=False),  # JSON list
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("assignee", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", sa.Double(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("result", sa.Text(), nullable=True),  # JSON
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.Column("claimed_at", sa.Double(), nullable=True),
    sa.Column("heartbeat_at", sa.Double(), nullable=True),
    sa.Column("ended_at", sa.Double(), nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    # How many of its dependencies are not done yet. Kept in step by every move that
    # adds a dependency or finishes one (DONE is final, so it only ever counts down),
    # so the claim walks ready tasks only, however many wait on others.
    sa.Column("open_deps", sa.Integer(), nullable=False),
)
# The claim query walks one of these in pick order (priority high first, then oldest)
# over the queued, ready tasks and stops at the first that fits: no sort, whatever
# the length of the queue.
sa.Index(
    "ix_tasks_pick",
    tasks.c.state,
    tasks.c.open_deps,
    tasks.c.priority.desc(),
    tasks.c.created_at,
    tasks.c.id,
)
sa.Index(
    "ix_tasks_team_pick",
    tasks.c.team,
    tasks.c.state,
    tasks.c.open_deps,
    tasks.c.priority.desc(),
    tasks.c.created_at,
    tasks.c.id,
)
sa.Index("ix_tasks_lease", tasks.c.state, tasks.c.lease_expires_at)
sa.Index("ix_tasks_assignee", tasks.c.assignee)

task_dependencies = sa.Table(
    "task_dependencies",
    metadata,
    sa.Column(
        "task_id",
        sa.String(64),
        sa.ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_dependencies_task"),
        primary_key=True,
    ),
    sa.Column(
        "depends_on",
        sa.String(64),
        sa.ForeignKey("tasks.id", name="fk_task_dependencies_depends_on"),
        primary_key=True,
    ),
    sa.Index("ix_task_dependencies_depends_on", "depends_on"),
)

task_labels = sa.Table(
    "task_labels",
    metadata,
    sa.Column(
        "task_id",
        sa.String(64),
        sa.ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_labels_task"),
        primary_key=True,
    ),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Index("ix_task_labels_label", "label"),
)

task_requires = sa.Table(
    "task_requires",
    metadata,
    sa.Column(
        "task_id",
        sa.String(64),
        sa.ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_requires_task"),
        primary_key=True,
    ),
    sa.Column("label", sa.String(64), primary_key=True),
)

task_history = sa.Table(
    "task_history",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "task_id",
        sa.String(64),
        sa.ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_history_task"),
        nullable=False,
    ),
    sa.Column("at", sa.Double(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=True),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),  # JSON object
    sa.Index("ix_task_history_task", "task_id", "id"),
)

_LIST_FIELDS = ("labels", "depends_on", "requires")


def encode_task(task: Task, open_deps: int) -> dict[str, Any]:
    """A Task as the values of its row."""
    values = task.to_dict()
    values["open_deps"] = open_deps
    for name in _LIST_FIELDS:
        values[name] = dump_json(values[name])
    values["result"] = None if task.result is None else dump_json(task.result)
    return values


def encode_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Some fields of a Task as column values."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name in _LIST_FIELDS:
            values[name] = dump_json(list(value))
        elif name == "result":
            values[name] = None if value is None else dump_json(value)
        elif name == "state":
            values[name] = TaskState(value).value
        else:
            values[name] = value
    return values


def decode_task(row: Mapping[Any, Any]) -> Task:
    return Task(
        id=row["id"],
        team=row["team"],
        title=row["title"],
        description=row["description"],
        labels=tuple(json.loads(row["labels"])),
        priority=row["priority"],
        depends_on=tuple(json.loads(row["depends_on"])),
        agent_kind=row["agent_kind"],
        requires=tuple(json.loads(row["requires"])),
        state=TaskState(row["state"]),
        assignee=row["assignee"],
        lease_expires_at=row["lease_expires_at"],
        attempts=row["attempts"],
        result=None if row["result"] is None else json.loads(row["result"]),
        error=row["error"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        claimed_at=row["claimed_at"],
        heartbeat_at=row["heartbeat_at"],
        ended_at=row["ended_at"],
        version=row["version"],
    )


def decode_event(row: Mapping[Any, Any]) -> TaskEvent:
    return TaskEvent(
        id=row["id"],
        task_id=row["task_id"],
        at=row["at"],
        kind=EventKind(row["kind"]),
        actor=row["actor"],
        message=row["message"],
        detail=json.loads(row["detail"]),
    )


# -- statements shared by the moves ------------------------------------------------------

INSERT_EVENT = sa.insert(task_history)


def claim_values(holder: str, now: float, lease_s: float) -> dict[str, Any]:
    return {
        "state": TaskState.CLAIMED.value,
        "assignee": holder,
        "lease_expires_at": now + lease_s,
        "claimed_at": now,
        "heartbeat_at": now,
        "updated_at": now,
    }


def queued_values(now: float) -> dict[str, Any]:
    return {
        "state": TaskState.QUEUED.value,
        "assignee": None,
        "lease_expires_at": None,
        "claimed_at": None,
        "heartbeat_at": None,
        "updated_at": now,
    }


def add_event(
    conn: Connection,
    task_id: str,
    at: float,
    kind: EventKind,
    actor: str | None,
    message: str,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        INSERT_EVENT,
        {
            "task_id": task_id,
            "at": at,
            "kind": kind.value,
            "actor": actor,
            "message": message,
            "detail": dump_json(detail or {}),
        },
    )


def write_side_rows(
    conn: Connection,
    task_id: str,
    labels: Sequence[str] | None,
    requires: Sequence[str] | None,
    depends_on: Sequence[str] | None,
) -> None:
    """Replace the given side rows of a task (None: leave that table alone)."""
    for table, column, values in (
        (task_labels, "label", labels),
        (task_requires, "label", requires),
        (task_dependencies, "depends_on", depends_on),
    ):
        if values is None:
            continue
        conn.execute(sa.delete(table).where(table.c.task_id == task_id))
        if values:
            conn.execute(sa.insert(table), [{"task_id": task_id, column: v} for v in values])


# -- checks over the dependency graph, inside the caller's transaction ----------------


def count_open_dependencies(conn: Connection, depends_on: Sequence[str], *, pg: bool) -> int:
    """How many of `depends_on` are not done; UsageError naming any that does not exist.

    On PostgreSQL the rows are locked FOR SHARE: a dependency being finished right now
    (FOR UPDATE) is counted after its holder commits, and one finished later finds
    this task's edge and counts it down (see `count_down_dependants`).
    """
    if not depends_on:
        return 0
    query = sa.select(tasks.c.id, tasks.c.state).where(tasks.c.id.in_(list(depends_on)))
    if pg:
        query = query.with_for_update(read=True)
    states = {row.id: row.state for row in conn.execute(query)}
    missing = [dep for dep in depends_on if dep not in states]
    if missing:
        raise UsageError(
            f"unknown dependency {', '.join(repr(m) for m in missing)}: "
            "a task can depend only on tasks that exist (create them first)"
        )
    return sum(1 for state in states.values() if state != TaskState.DONE.value)


def count_down_dependants(conn: Connection, task_id: str) -> None:
    """`task_id` is done: each task depending on it waits for one dependency fewer."""
    dependants = sa.select(task_dependencies.c.task_id).where(
        task_dependencies.c.depends_on == task_id
    )
    conn.execute(
        sa.update(tasks).where(tasks.c.id.in_(dependants)).values(open_deps=tasks.c.open_deps - 1)
    )


def check_no_cycle(conn: Connection, task_id: str, depends_on: Sequence[str]) -> None:
    """Refuse dependencies that would make a cycle; reads the graph reachable from them."""
    deps_of: dict[str, list[str]] = {}
    frontier = {d for d in depends_on if d != task_id}
    while frontier:  # each round reads new tasks only, so at most one round per task
        query = sa.select(task_dependencies).where(task_dependencies.c.task_id.in_(frontier))
        for task, dep in conn.execute(query):
            deps_of.setdefault(task, []).append(dep)
        for task in frontier:
            deps_of.setdefault(task, [])
        frontier = {d for ds in deps_of.values() for d in ds if d not in deps_of}
        frontier.discard(task_id)
    cycle = find_cycle(task_id, depends_on, deps_of)
    if cycle is not None:
        raise UsageError(f"dependencies would make a cycle: {describe_cycle(cycle)}")


def check_ready(conn: Connection, task: Task) -> None:
    if not task.depends_on:
        return
    query = sa.select(tasks.c.id, tasks.c.state).where(tasks.c.id.in_(list(task.depends_on)))
    states = {row.id: TaskState(row.state) for row in conn.execute(query)}
    if readiness(states.values()) is not Readiness.READY:
        pending = ", ".join(
            f"{d} ({states.get(d, 'missing')})"
            for d in task.depends_on
            if states.get(d) is not TaskState.DONE
        )
        raise IllegalTransition(
            f"task {task.id} waits for its dependencies {pending}: assign it once they are done"
        )
