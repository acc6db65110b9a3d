"""Persistence of coordination tasks on the SqlStore's engine: one transaction per method.

Claiming is one statement: `UPDATE tasks SET <claimed by X> WHERE id = (the first
claimable row in pick order) AND state = 'queued' RETURNING *`. On SQLite it runs
under the database's single write lock (BEGIN IMMEDIATE; this process's writers
queue on one thread lock), so two claimers never see the same queued row. On
PostgreSQL the inner SELECT takes its row FOR UPDATE SKIP LOCKED: concurrent
claimers lock different rows without waiting on each other, and a row claimed
meanwhile is re-checked and passed over. Either way the walk follows an index in
pick order and stops at the first claimable row.

Every other move locks the row (FOR UPDATE on PostgreSQL; the write lock on SQLite),
judges the move by the domain's rules, and writes it with a compare-and-set on the
row's version, appending a history entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from flotilla.domain.errors import IllegalTransition, NotFound, OperationFailed, UsageError
from flotilla.domain.tasks import (
    EventKind,
    Task,
    TaskEvent,
    TaskState,
    check_holder,
    check_task_transition,
)
from flotilla.store.base import Store
from flotilla.store.claim_sql import ClaimWant, claim_many
from flotilla.store.group_commit import GroupCommit
from flotilla.store.sql import SqlStore
from flotilla.store.task_schema import (
    add_event,
    check_no_cycle,
    check_ready,
    claim_values,
    count_down_dependants,
    count_open_dependencies,
    decode_event,
    decode_task,
    encode_changes,
    encode_task,
    queued_values,
    task_history,
    task_labels,
    tasks,
    write_side_rows,
)

_t = tasks.c
_C = TaskState.CLAIMED.value
# Fields `update` may change; the rest move only through claims and their ends.
UPDATABLE = frozenset(
    {"title", "description", "labels", "priority", "depends_on", "agent_kind", "requires"}
)
# These gate who may claim a task, so they change only while nobody holds it.
_GATING = frozenset({"depends_on", "agent_kind", "requires"})
_EXPIRE_BATCH = 500


class TaskStale(IllegalTransition):
    """The task changed since the caller read it (its version differs): read it again."""


def task_store(store: Store) -> TaskStore:
    """The task tables of `store` (which must be the SQL store)."""
    if not isinstance(store, SqlStore):
        raise OperationFailed(f"tasks need the SQL store, not {type(store).__name__}")
    return TaskStore(store)


def _not_found(task_id: str) -> NotFound:
    return NotFound(f"no task with id {task_id!r}: list the tasks to see their ids")


class TaskStore:
    """Task tables over an SqlStore (sharing its engine and its transactions)."""

    def __init__(self, store: SqlStore) -> None:
        self._sql = store
        self._pg = store.engine.dialect.name != "sqlite"
        # Set by the daemon: store a claim's bus event in the claim's own transaction (one
        # commit, one turn of the write lock instead of two); None: the caller publishes.
        # Stores the events of moves in the moves' own transaction (the daemon's bus).
        self.event_in_tx: Callable[[Connection, list[Task], EventKind], object] | None = None

    def _tx(self, *, write: bool = False) -> Any:
        return self._sql._tx(write=write)

    def group_commit(self) -> GroupCommit:
        """Batches of writes (`claim_many_in`, ...) of concurrent callers, one transaction each."""
        return GroupCommit(lambda: self._tx(write=True))

    # -- reading ---------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        with self._tx() as conn:
            return _get(conn, task_id)

    def list_tasks(
        self,
        *,
        team: str | None = None,
        states: Iterable[TaskState] | None = None,
        label: str | None = None,
        assignee: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        """Oldest first."""
        query = sa.select(tasks).order_by(_t.created_at, _t.id)
        if team is not None:
            query = query.where(_t.team == team)
        if states is not None:
            query = query.where(_t.state.in_(sorted(TaskState(s).value for s in states)))
        if assignee is not None:
            query = query.where(_t.assignee == assignee)
        if label is not None:
            tagged = sa.select(task_labels.c.task_id).where(task_labels.c.label == label)
            query = query.where(_t.id.in_(tagged))
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            return [decode_task(r._mapping) for r in conn.execute(query)]

    def dependency_states(self, task_ids: Sequence[str]) -> dict[str, TaskState]:
        query = sa.select(_t.id, _t.state).where(_t.id.in_(list(task_ids)))
        with self._tx() as conn:
            return {row.id: TaskState(row.state) for row in conn.execute(query)}

    def history(self, task_id: str) -> list[TaskEvent]:
        query = sa.select(task_history).where(task_history.c.task_id == task_id)
        with self._tx() as conn:
            _get(conn, task_id)
            rows = conn.execute(query.order_by(task_history.c.id))
            return [decode_event(r._mapping) for r in rows]

    # -- creating and changing -----------------------------------------------------------------

    def create_task(self, task: Task) -> Task:
        """Insert a queued task with its side rows and its `created` history entry."""
        message = f"created by {task.created_by or 'someone'} in team {task.team}"
        try:
            with self._tx(write=True) as conn:
                open_deps = count_open_dependencies(conn, task.depends_on, pg=self._pg)
                conn.execute(sa.insert(tasks).values(**encode_task(task, open_deps)))
                write_side_rows(conn, task.id, task.labels, task.requires, task.depends_on)
                add_event(
                    conn, task.id, task.created_at, EventKind.CREATED, task.created_by, message
                )
                return task
        except IntegrityError as exc:  # the id was taken (ids are random: all but never)
            raise UsageError(f"task {task.id!r} could not be stored: {exc.orig}") from exc

    def update(
        self,
        task_id: str,
        changes: Mapping[str, Any],
        *,
        actor: str | None,
        now: float,
        note: str | None = None,
        expect_version: int | None = None,
    ) -> Task:
        """Change fields (already validated) and/or add a note, in one transaction."""
        unknown = sorted(set(changes) - UPDATABLE)
        if unknown:
            raise UsageError(
                f"task field(s) {', '.join(unknown)} cannot be updated: "
                f"updatable fields are {', '.join(sorted(UPDATABLE))}"
            )
        with self._tx(write=True) as conn:
            task = self._lock(conn, task_id)
            if expect_version is not None and task.version != expect_version:
                raise TaskStale(
                    f"task {task_id} is at version {task.version}, not {expect_version}: "
                    "it changed meanwhile; read it again and retry"
                )
            changed = {k: v for k, v in changes.items() if getattr(task, k) != v}
            if changed and task.state.is_terminal:
                raise IllegalTransition(f"task {task_id} is {task.state}: it cannot be changed")
            gating = sorted(_GATING & set(changed))
            if gating and task.state not in (TaskState.QUEUED, TaskState.FAILED):
                raise IllegalTransition(
                    f"task {task_id} is {task.state}: {', '.join(gating)} can change only "
                    "while it is queued or failed (release it first)"
                )
            values = dict(changed)
            if "depends_on" in changed:
                deps = changed["depends_on"]
                values["open_deps"] = count_open_dependencies(conn, deps, pg=self._pg)
                check_no_cycle(conn, task_id, deps)
            if changed:
                get = changed.get
                write_side_rows(conn, task_id, get("labels"), get("requires"), get("depends_on"))
                message = f"{', '.join(sorted(changed))} changed by {actor or 'someone'}"
                detail = {k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()}
                task = _move(conn, task, now, values, EventKind.UPDATED, actor, message, detail)
            if note:
                add_event(conn, task_id, now, EventKind.NOTE, actor, note)
            return task

    # -- claims and leases ---------------------------------------------------------------------

    def claim(self, want: ClaimWant) -> Task | None:
        """Claim the first claimable task in pick order for `want.claimer`, or None."""
        with self._tx(write=True) as conn:
            return self.claim_many_in(conn, [want])[0]

    def claim_many_in(self, conn: Connection, wants: Sequence[ClaimWant]) -> list[Task | None]:
        """Each claim in turn (each sees the ones before it) inside the caller's write
        transaction (a group commit's), with their history entries, then their events at
        once (`event_in_tx`). On PostgreSQL the claims of one shape go in one statement."""
        got = claim_many(conn, wants, pg=self._pg)
        claimed = [task for task in got if task is not None]
        if claimed and self.event_in_tx is not None:
            self.event_in_tx(conn, claimed, EventKind.CLAIMED)
        return got

    def assign(
        self,
        task_id: str,
        assignee: str,
        *,
        actor: str | None,
        now: float,
        lease_s: float,
        reassign: bool = False,
    ) -> Task:
        """Claim `task_id` on behalf of `assignee`; with `reassign`, take it from its holder."""
        with self._tx(write=True) as conn:
            task = self._lock(conn, task_id)
            by = f" by {actor}" if actor else ""
            if task.state is TaskState.CLAIMED:
                if not reassign:
                    raise IllegalTransition(
                        f"task {task_id} is already claimed by {task.assignee}: "
                        "reassign it (as a coordinator) to take it from them"
                    )
                message = f"reassigned from {task.assignee} to {assignee}{by}"
            else:
                check_task_transition(task_id, task.state, TaskState.CLAIMED)
                check_ready(conn, task)
                message = f"assigned to {assignee}{by} (lease {lease_s:g} s)"
            values = {**claim_values(assignee, now, lease_s), "attempts": task.attempts + 1}
            detail = {"to": assignee}
            return _move(conn, task, now, values, EventKind.ASSIGNED, actor, message, detail)

    def heartbeat(self, task_id: str, holder: str, *, now: float, lease_s: float) -> Task:
        """Extend the holder's lease to now + lease_s (only the holder may)."""
        statement = (
            sa.update(tasks)
            .where(_t.id == task_id, _t.state == _C, _t.assignee == holder)
            .values(lease_expires_at=now + lease_s, heartbeat_at=now)
            .returning(*tasks.c)
        )
        with self._tx(write=True) as conn:
            row = conn.execute(statement).first()
            if row is not None:
                return decode_task(row._mapping)
            check_holder(_get(conn, task_id), holder, doing="heartbeat")
            raise OperationFailed(f"the lease of task {task_id} could not be extended")

    def expire_leases(self, now: float) -> list[Task]:
        """Put claimed tasks whose lease ran out before `now` back in the queue (at most
        a batch per call), saying so in their history. Returns them as re-queued."""
        query = (
            sa.select(_t.id, _t.assignee, _t.lease_expires_at)
            .where(_t.state == _C, _t.lease_expires_at < now)
            .order_by(_t.lease_expires_at)
            .limit(_EXPIRE_BATCH)
        )
        with self._tx() as conn:  # a read first: most sweeps find nothing, and take no lock
            if conn.execute(query.limit(1)).first() is None:
                return []
        if self._pg:  # a row being finished right now is left to its holder
            query = query.with_for_update(skip_locked=True)
        expired: list[Task] = []
        with self._tx(write=True) as conn:
            for row in conn.execute(query).all():
                moved = conn.execute(
                    sa.update(tasks)
                    .where(_t.id == row.id, _t.state == _C, _t.assignee == row.assignee)
                    .values(**queued_values(now), version=_t.version + 1)
                    .returning(*tasks.c)
                ).first()
                if moved is None:
                    continue
                expired.append(decode_task(moved._mapping))
                message = f"lease of {row.assignee} expired; back in the queue"
                detail = {"holder": row.assignee, "expired_at": row.lease_expires_at}
                add_event(conn, row.id, now, EventKind.LEASE_EXPIRED, None, message, detail)
        return expired

    # -- ends of a claim -------------------------------------------------------------------------

    def finish(
        self,
        task_id: str,
        actor: str,
        *,
        state: TaskState,
        now: float,
        result: Any = None,
        error: str | None = None,
        coordinator: bool = False,
    ) -> Task:
        """Complete (DONE) or fail (FAILED) a claimed task: only its holder, or a coordinator."""
        if state not in (TaskState.DONE, TaskState.FAILED):
            raise UsageError(f"a task finishes done or failed, not {state}")
        doing = "complete" if state is TaskState.DONE else "fail"
        kind = EventKind.DONE if state is TaskState.DONE else EventKind.FAILED
        with self._tx(write=True) as conn:
            task = self._lock(conn, task_id)
            check_holder(task, actor, coordinator=coordinator, doing=doing)
            check_task_transition(task_id, task.state, state)
            values = {
                "state": state,
                "result": result,
                "error": error,
                "ended_at": now,
                "lease_expires_at": None,
                "assignee": task.assignee or actor,
            }
            message = f"{state} by {actor}" + (f": {error}" if error else "")
            if state is TaskState.DONE:
                count_down_dependants(conn, task_id)
            return _move(conn, task, now, values, kind, actor, message)

    def release(
        self,
        task_id: str,
        actor: str,
        *,
        now: float,
        kind: EventKind = EventKind.RELEASED,
        reason: str | None = None,
        coordinator: bool = False,
    ) -> Task:
        """Back to the queue: the holder gives a claimed task back (RELEASED), or a
        failed task is queued again (REQUEUED)."""
        with self._tx(write=True) as conn:
            task = self._lock(conn, task_id)
            if kind is EventKind.RELEASED:
                check_holder(task, actor, coordinator=coordinator, doing="release")
            elif task.state is not TaskState.FAILED:
                raise IllegalTransition(
                    f"task {task_id} is {task.state}: only a failed task is re-queued "
                    "(a claimed one is released)"
                )
            check_task_transition(task_id, task.state, TaskState.QUEUED)
            values = {**queued_values(now), "result": None, "error": None, "ended_at": None}
            message = f"{kind} by {actor}" + (f": {reason}" if reason else "")
            return _move(conn, task, now, values, kind, actor, message)

    def cancel(self, task_id: str, actor: str | None, *, now: float, reason: str | None) -> Task:
        with self._tx(write=True) as conn:
            task = self._lock(conn, task_id)
            check_task_transition(task_id, task.state, TaskState.CANCELLED)
            values = {"state": TaskState.CANCELLED, "ended_at": now, "lease_expires_at": None}
            message = f"cancelled by {actor or 'someone'}" + (f": {reason}" if reason else "")
            return _move(conn, task, now, values, EventKind.CANCELLED, actor, message)

    def _lock(self, conn: Connection, task_id: str) -> Task:
        query = sa.select(tasks).where(_t.id == task_id)
        if self._pg:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise _not_found(task_id)
        return decode_task(row._mapping)


def _move(
    conn: Connection,
    task: Task,
    now: float,
    fields: Mapping[str, Any],
    kind: EventKind,
    actor: str | None,
    message: str,
    detail: dict[str, Any] | None = None,
) -> Task:
    """Write `fields` (compare-and-set) and append the history entry saying so."""
    moved = _write(conn, task, now, fields)
    add_event(conn, task.id, now, kind, actor, message, detail)
    return moved


def _write(conn: Connection, task: Task, now: float, fields: Mapping[str, Any]) -> Task:
    """Compare-and-set on the version read under the row lock."""
    values = {**encode_changes(fields), "updated_at": now, "version": task.version + 1}
    row = conn.execute(
        sa.update(tasks)
        .where(_t.id == task.id, _t.version == task.version)
        .values(**values)
        .returning(*tasks.c)
    ).first()
    if row is None:  # cannot happen under the row lock; refuse rather than guess
        raise TaskStale(f"task {task.id} changed meanwhile: read it again and retry")
    return decode_task(row._mapping)


def _get(conn: Connection, task_id: str) -> Task:
    row = conn.execute(sa.select(tasks).where(_t.id == task_id)).first()
    if row is None:
        raise _not_found(task_id)
    return decode_task(row._mapping)
