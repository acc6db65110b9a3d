"""Coordination tasks as a service: what the HTTP API, MCP tools and CLI ask of them.

Input is checked here (one clear line per problem, nothing stored on a bad
request); the store makes each move one transaction; the domain decides which
moves are legal. Roles are not checked here: the front ends enforce the
permission matrix and pass `coordinator=True` when the caller may act for any
holder.

Leases: a claim (or an assignment) holds a task until `lease_expires_at`; the
holder renews it with `heartbeat`. `expire_leases` puts tasks whose lease ran
out back in the queue and says so in their history; a claim that finds nothing
runs it once itself, so expired work returns even before a periodic sweep does.
The holder owns the task until it is actually re-queued, so a heartbeat or a
result that arrives late but before the sweep is still accepted.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from flotilla import counters
from flotilla.domain.errors import UsageError
from flotilla.domain.tasks import (
    DEFAULT_LEASE_S,
    EventKind,
    Readiness,
    Task,
    TaskEvent,
    TaskState,
    check_name,
    check_priority,
    check_title,
    lease_deadline,
    normalize_dependencies,
    normalize_labels,
    readiness,
    to_task_state,
)
from flotilla.store.base import Store
from flotilla.store.claim_sql import ClaimWant
from flotilla.store.task_sql import task_store

log = logging.getLogger(__name__)

ID_BYTES = 5  # "t-" and 10 hex digits
MAX_DESCRIPTION = 20_000
MAX_REASON = 2_000

OnChange = Callable[[Task, EventKind], None]


class _Unset(Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET  # `update`: leave this field as it is


def new_task_id() -> str:
    return f"t-{secrets.token_hex(ID_BYTES)}"


class TaskService:
    """Create, claim, heartbeat, finish and inspect tasks.

    `clock` gives the time leases are measured by (injected so tests can move it);
    `on_change` is told of every stored move (to publish it on the bus), and its
    failures are counted, never raised into the caller's move.
    """

    def __init__(
        self,
        store: Store,
        *,
        default_lease_s: float = DEFAULT_LEASE_S,
        clock: Callable[[], float] = time.time,
        on_change: OnChange | None = None,
        event_in_tx: Callable[[Any, list[Task], EventKind], object] | None = None,
    ) -> None:
        self._store = task_store(store)
        self._store.event_in_tx = event_in_tx  # a claim's event, stored with the claim
        lease_deadline(0.0, default_lease_s)  # refuses a bad default up front
        self.default_lease_s = default_lease_s
        self._clock = clock
        self._on_change = on_change
        self._writes = self._store.group_commit()  # claims from the event loop, batched

    # -- creating and reading --------------------------------------------------------------

    def create(
        self,
        team: str,
        title: str,
        *,
        description: str = "",
        labels: Iterable[str] = (),
        priority: int = 0,
        depends_on: Iterable[str] = (),
        agent_kind: str | None = None,
        requires: Iterable[str] = (),
        created_by: str | None = None,
    ) -> Task:
        now = self._clock()
        task = Task(
            id=new_task_id(),
            team=check_name(team, "team name"),
            title=check_title(title),
            description=_check_text(description, "description", MAX_DESCRIPTION),
            labels=normalize_labels(labels),
            priority=check_priority(priority),
            depends_on=normalize_dependencies(depends_on),
            agent_kind=None if agent_kind is None else check_name(agent_kind, "agent kind"),
            requires=normalize_labels(requires, "required capability"),
            created_by=None if created_by is None else check_name(created_by, "creator name"),
            created_at=now,
            updated_at=now,
        )
        stored = self._store.create_task(task)
        self._notify(stored, EventKind.CREATED)
        return stored

    def get(self, task_id: str) -> Task:
        return self._store.get_task(task_id)

    def list(
        self,
        *,
        team: str | None = None,
        state: TaskState | str | Iterable[TaskState | str] | None = None,
        label: str | None = None,
        assignee: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[Task]:
        """Tasks oldest first, filtered by team, state(s), one label and/or assignee."""
        states: builtins.list[TaskState] | None = None
        if isinstance(state, str):
            states = [to_task_state(state)]
        elif state is not None:
            states = [to_task_state(s) for s in state]
        if limit is not None and limit < 1:
            raise UsageError(f"limit {limit} is not a positive number of tasks")
        return self._store.list_tasks(
            team=team, states=states, label=label, assignee=assignee, limit=limit
        )

    def history(self, task_id: str) -> builtins.list[TaskEvent]:
        return self._store.history(task_id)

    def readiness(self, task_id: str) -> tuple[Readiness, dict[str, TaskState]]:
        """Whether a task's dependencies let it be claimed, and the state of each."""
        task = self._store.get_task(task_id)
        states = self._store.dependency_states(task.depends_on)
        return readiness(states.values()), states

    # -- claims and leases ----------------------------------------------------------------------

    def claim(
        self,
        claimer: str,
        *,
        agent_kind: str | None = None,
        labels: Iterable[str] = (),
        team: str | None = None,
        lease_s: float | None = None,
    ) -> Task | None:
        """Atomically claim the best claimable task (highest priority, then oldest) whose
        dependencies are done and whose capability needs `agent_kind` and `labels` meet;
        None when there is none. No task is ever claimed by two claimers."""
        want = self._want(claimer, agent_kind, labels, team, lease_s)
        task = self._store.claim(want) or self._claim_after_sweep(want)
        if task is not None:
            self._notify(task, EventKind.CLAIMED)
        return task

    async def claim_soon(
        self,
        claimer: str,
        *,
        agent_kind: str | None = None,
        labels: Iterable[str] = (),
        team: str | None = None,
        lease_s: float | None = None,
    ) -> Task | None:
        """`claim` from the event loop, committed with the claims of other callers waiting
        at the same moment (store/group_commit.py): one transaction for many claims."""
        want = self._want(claimer, agent_kind, labels, team, lease_s)
        task: Task | None = await self._writes.add(self._store.claim_many_in, want)
        if task is None:
            again = want._replace(now=self._clock())
            task = await asyncio.to_thread(self._claim_after_sweep, again)
        if task is not None:
            self._notify(task, EventKind.CLAIMED)
        return task

    def _claim_after_sweep(self, want: ClaimWant) -> Task | None:
        """Nothing was claimable: put tasks whose lease ran out back in the queue and, if
        there were any, look once more."""
        return self._store.claim(want) if self.expire_leases(want.now) else None

    def _want(
        self,
        claimer: str,
        agent_kind: str | None,
        labels: Iterable[str],
        team: str | None,
        lease_s: float | None,
    ) -> ClaimWant:
        return ClaimWant(
            claimer=check_name(claimer, "claimer name"),
            now=self._clock(),
            lease_s=self._lease(lease_s),
            team=team,
            agent_kind=None if agent_kind is None else check_name(agent_kind, "agent kind"),
            labels=tuple(normalize_labels(labels, "capability label")),
        )

    def assign(
        self,
        task_id: str,
        assignee: str,
        *,
        actor: str | None = None,
        lease_s: float | None = None,
        reassign: bool = False,
    ) -> Task:
        """Claim a task on behalf of `assignee` (a lead handing out work). A claimed task
        moves to another holder only with `reassign` (a coordinator's decision)."""
        task = self._store.assign(
            task_id,
            check_name(assignee, "assignee name"),
            actor=actor,
            now=self._clock(),
            lease_s=self._lease(lease_s),
            reassign=reassign,
        )
        self._notify(task, EventKind.ASSIGNED)
        return task

    def heartbeat(self, task_id: str, holder: str, *, lease_s: float | None = None) -> Task:
        """Renew the holder's lease to now + lease_s. NotHolder for anyone else."""
        return self._store.heartbeat(
            task_id, holder, now=self._clock(), lease_s=self._lease(lease_s)
        )

    def expire_leases(self, now: float | None = None) -> builtins.list[Task]:
        """Re-queue every claimed task whose lease ran out; each says so in its history."""
        expired = self._store.expire_leases(self._clock() if now is None else now)
        for task in expired:
            self._notify(task, EventKind.LEASE_EXPIRED)
        return expired

    # -- changing and finishing -----------------------------------------------------------------

    def update(
        self,
        task_id: str,
        *,
        actor: str | None = None,
        title: str | _Unset = UNSET,
        description: str | _Unset = UNSET,
        labels: Iterable[str] | _Unset = UNSET,
        priority: int | _Unset = UNSET,
        depends_on: Iterable[str] | _Unset = UNSET,
        agent_kind: str | _Unset | None = UNSET,
        requires: Iterable[str] | _Unset = UNSET,
        note: str | None = None,
        expect_version: int | None = None,
    ) -> Task:
        """Change the given fields and/or add a note to the history. Dependencies and
        capability needs change only while the task is queued or failed; a dependency
        cycle is refused, naming it."""
        changes: dict[str, Any] = {}
        if not isinstance(title, _Unset):
            changes["title"] = check_title(title)
        if not isinstance(description, _Unset):
            changes["description"] = _check_text(description, "description", MAX_DESCRIPTION)
        if not isinstance(labels, _Unset):
            changes["labels"] = normalize_labels(labels)
        if not isinstance(priority, _Unset):
            changes["priority"] = check_priority(priority)
        if not isinstance(depends_on, _Unset):
            changes["depends_on"] = normalize_dependencies(depends_on)
        if not isinstance(agent_kind, _Unset):
            changes["agent_kind"] = (
                None if agent_kind is None else check_name(agent_kind, "agent kind")
            )
        if not isinstance(requires, _Unset):
            changes["requires"] = normalize_labels(requires, "required capability")
        if note is not None:
            note = _check_text(note, "note", MAX_REASON) or None
        if not changes and note is None:
            raise UsageError("nothing to update: give a field to change or a note")
        task = self._store.update(
            task_id,
            changes,
            actor=actor,
            now=self._clock(),
            note=note,
            expect_version=expect_version,
        )
        self._notify(task, EventKind.UPDATED if changes else EventKind.NOTE)
        return task

    def complete(
        self, task_id: str, actor: str, result: Any = None, *, coordinator: bool = False
    ) -> Task:
        """Mark a claimed task done with its result (any JSON value): only its holder, or a
        coordinator."""
        task = self._store.finish(
            task_id,
            actor,
            state=TaskState.DONE,
            now=self._clock(),
            result=result,
            coordinator=coordinator,
        )
        self._notify(task, EventKind.DONE)
        return task

    def fail(
        self,
        task_id: str,
        actor: str,
        reason: str,
        *,
        result: Any = None,
        coordinator: bool = False,
    ) -> Task:
        """Mark a claimed task failed, saying why: only its holder, or a coordinator."""
        why = _check_text(reason, "failure reason", MAX_REASON)
        if not why:
            raise UsageError("say why the task failed: the reason is empty")
        task = self._store.finish(
            task_id,
            actor,
            state=TaskState.FAILED,
            now=self._clock(),
            result=result,
            error=why,
            coordinator=coordinator,
        )
        self._notify(task, EventKind.FAILED)
        return task

    def release(
        self, task_id: str, actor: str, *, reason: str | None = None, coordinator: bool = False
    ) -> Task:
        """The holder gives a claimed task back to the queue."""
        task = self._store.release(
            task_id, actor, now=self._clock(), reason=reason, coordinator=coordinator
        )
        self._notify(task, EventKind.RELEASED)
        return task

    def requeue(self, task_id: str, actor: str, *, reason: str | None = None) -> Task:
        """Put a failed task back in the queue to be tried again."""
        task = self._store.release(
            task_id, actor, now=self._clock(), kind=EventKind.REQUEUED, reason=reason
        )
        self._notify(task, EventKind.REQUEUED)
        return task

    def cancel(self, task_id: str, actor: str | None = None, *, reason: str | None = None) -> Task:
        task = self._store.cancel(task_id, actor, now=self._clock(), reason=reason)
        self._notify(task, EventKind.CANCELLED)
        return task

    # -- helpers ----------------------------------------------------------------------------

    def _lease(self, lease_s: float | None) -> float:
        lease = self.default_lease_s if lease_s is None else lease_s
        lease_deadline(0.0, lease)  # validates it
        return float(lease)

    def _notify(self, task: Task, kind: EventKind) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(task, kind)
        except Exception:  # a listener's failure must not undo or fail a stored move
            counters.count("tasks.on_change_failed")
            log.exception("task listener failed on %s of %s", kind, task.id)


def _check_text(value: str, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise UsageError(f"the task {what} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise UsageError(f"the task {what} is {len(value)} characters, over {limit}")
    return value.strip()
