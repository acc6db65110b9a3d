"""Persistence of workflows, their stages and their planned workers, on the SqlStore's engine.

Every method is one transaction (through the SqlStore's own, so SQLite writers
of this process queue on one lock). State moves are compare-and-set: the
`UPDATE` names the state (and for stages the attempt) just read, so a stage can
never be started twice, even by two processes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from flotilla import counters
from flotilla.domain.errors import IllegalTransition, NotFound, OperationFailed, UsageError
from flotilla.domain.workflow import (
    StageState,
    WorkflowState,
    check_stage_transition,
    check_workflow_transition,
)
from flotilla.store.base import Store
from flotilla.store.sql import SqlStore
from flotilla.store.workflow_rows import (
    StageRow,
    StageWorkerRow,
    WorkflowRow,
    check_fields,
    decode_stage,
    decode_stage_worker,
    decode_workflow,
    encode,
)
from flotilla.store.workflow_schema import workflow_stage_workers, workflow_stages, workflows

_CAS_TRIES = 100

_wf = workflows.c
_st = workflow_stages.c
_sw = workflow_stage_workers.c


class StageStale(IllegalTransition):
    """A stage was not in the state (or attempt) the caller expected: someone moved first."""


def workflow_store(store: Store) -> WorkflowStore:
    """The workflow tables of `store` (which must be the SQL store)."""
    if not isinstance(store, SqlStore):
        raise OperationFailed(f"workflows need the SQL store, not {type(store).__name__}")
    return WorkflowStore(store)


def _not_found(workflow_id: str) -> NotFound:
    return NotFound(f"no workflow with id {workflow_id!r} (see `fleet workflow list`)")


class WorkflowStore:
    """Workflow tables over an SqlStore (sharing its engine and its transactions)."""

    def __init__(self, store: SqlStore) -> None:
        self._sql = store

    def _tx(self, *, write: bool = False) -> Any:
        return self._sql._tx(write=write)

    # -- workflows -------------------------------------------------------------

    def create_workflow(self, row: WorkflowRow, stage_names: Sequence[str]) -> WorkflowRow:
        """Insert a workflow and its stages (all pending) in one transaction."""
        row = dataclasses.replace(row, created_at=row.created_at or time.time())
        values = encode("workflows", row.__dict__)
        try:
            with self._tx(write=True) as conn:
                conn.execute(sa.insert(workflows).values(**values))
                for position, name in enumerate(stage_names):
                    stage = StageRow(workflow_id=row.id, name=name, position=position)
                    conn.execute(
                        sa.insert(workflow_stages).values(
                            **encode("workflow_stages", stage.__dict__)
                        )
                    )
        except IntegrityError as exc:
            raise UsageError(f"a workflow with id {row.id!r} already exists") from exc
        return row

    def get_workflow(self, workflow_id: str) -> WorkflowRow:
        with self._tx() as conn:
            return _get_workflow(conn, workflow_id)

    def find_workflows(self, prefix: str, project: str | None = None) -> list[WorkflowRow]:
        """Workflows whose id starts with `prefix` (an id given in full or in part)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = sa.select(workflows).where(_wf.id.like(f"{escaped}%", escape="\\"))
        if project is not None:
            query = query.where(_wf.project == project)
        with self._tx() as conn:
            return [decode_workflow(r._mapping) for r in conn.execute(query.order_by(_wf.id))]

    def list_workflows(
        self, project: str | None = None, states: Iterable[WorkflowState] | None = None
    ) -> list[WorkflowRow]:
        """Oldest first."""
        query = sa.select(workflows).order_by(_wf.created_at, _wf.id)
        if project is not None:
            query = query.where(_wf.project == project)
        if states is not None:
            query = query.where(_wf.state.in_(sorted(WorkflowState(s).value for s in states)))
        with self._tx() as conn:
            return [decode_workflow(r._mapping) for r in conn.execute(query)]

    def update_workflow(
        self, workflow_id: str, *, expect_state: WorkflowState | None = None, **fields: Any
    ) -> WorkflowRow:
        """Change fields of a workflow; a `state` among them must be a legal move."""
        check_fields(WorkflowRow, fields, {"id", "project", "created_at"})
        values = encode("workflows", fields)
        target = WorkflowState(fields["state"]) if "state" in fields else None
        for _ in range(_CAS_TRIES):
            with self._tx(write=True) as conn:
                current = _get_workflow(conn, workflow_id).state
                if expect_state is not None and current is not expect_state:
                    raise IllegalTransition(
                        f"workflow {workflow_id} is {current}, not {expect_state} as expected"
                    )
                if target is not None and target is not current:
                    check_workflow_transition(current, target)
                moved = conn.execute(
                    sa.update(workflows)
                    .where(_wf.id == workflow_id, _wf.state == current.value)
                    .values(**values)
                )
                if moved.rowcount == 1:
                    return _get_workflow(conn, workflow_id)
            counters.count("store.workflow_cas_retry")
        raise OperationFailed(f"workflow {workflow_id} kept changing while being updated")

    # -- stages ----------------------------------------------------------------

    def stages(self, workflow_id: str) -> list[StageRow]:
        query = (
            sa.select(workflow_stages).where(_st.workflow_id == workflow_id).order_by(_st.position)
        )
        with self._tx() as conn:
            return [decode_stage(r._mapping) for r in conn.execute(query)]

    def get_stage(self, workflow_id: str, name: str) -> StageRow:
        with self._tx() as conn:
            return _get_stage(conn, workflow_id, name)

    def update_stage(
        self,
        workflow_id: str,
        name: str,
        *,
        expect_state: StageState | None = None,
        expect_attempt: int | None = None,
        **fields: Any,
    ) -> StageRow:
        """Compare-and-set one stage: StageStale when its state or attempt is not the one
        expected; a `state` among the fields must be a legal move from the stored one."""
        with self._tx(write=True) as conn:
            return _move_stage(conn, workflow_id, name, expect_state, expect_attempt, fields)

    def start_stage(
        self,
        workflow_id: str,
        name: str,
        *,
        expect_state: StageState,
        expect_attempt: int,
        planned: Sequence[StageWorkerRow],
        **fields: Any,
    ) -> StageRow:
        """Move a stage to RUNNING at attempt `expect_attempt + 1` and record the workers
        that attempt will have, in one transaction: a stage starts once, and a restarted
        daemon finds the names of the workers it must create (or adopt)."""
        attempt = expect_attempt + 1
        if expect_state is StageState.RUNNING:  # a retry goes back to ready, then runs again
            check_stage_transition(StageState.RUNNING, StageState.READY)
            current = StageState.READY
        else:
            current = expect_state
        check_stage_transition(current, StageState.RUNNING)
        with self._tx(write=True) as conn:
            moved = _move_stage(
                conn,
                workflow_id,
                name,
                expect_state,
                expect_attempt,
                {**fields, "attempt": attempt},
                target=StageState.RUNNING,
            )
            for row in planned:
                if row.stage != name or row.attempt != attempt:
                    raise UsageError(f"planned worker {row.name} is not of {name} #{attempt}")
                _insert_worker_row(conn, row)
            return moved

    def resume(
        self,
        workflow_id: str,
        stage_names: Sequence[str],
        *,
        expect_state: WorkflowState,
        **fields: Any,
    ) -> WorkflowRow:
        """`fleet workflow resume`: the stages back to PENDING (attempts counted on) and the
        workflow RUNNING again, in one transaction."""
        with self._tx(write=True) as conn:
            for name in stage_names:
                stage = _get_stage(conn, workflow_id, name)
                _move_stage(
                    conn,
                    workflow_id,
                    name,
                    stage.state,
                    stage.attempt,
                    {
                        "retry_base": stage.attempt,
                        "outcome": None,
                        "ended_at": None,
                        "error": None,
                        "facts": None,
                        "ranking": None,
                        "winner": None,
                    },
                    target=StageState.PENDING,
                )
            current = _get_workflow(conn, workflow_id).state
            if current is not expect_state:
                raise IllegalTransition(f"workflow {workflow_id} is {current}, not {expect_state}")
            check_workflow_transition(current, WorkflowState.RUNNING)
            values = encode("workflows", {**fields, "state": WorkflowState.RUNNING})
            conn.execute(
                sa.update(workflows)
                .where(_wf.id == workflow_id, _wf.state == current.value)
                .values(**values)
            )
            return _get_workflow(conn, workflow_id)

    # -- planned workers ------------------------------------------------------------

    def stage_workers(self, workflow_id: str, stage: str | None = None) -> list[StageWorkerRow]:
        query = sa.select(workflow_stage_workers).where(_sw.workflow_id == workflow_id)
        if stage is not None:
            query = query.where(_sw.stage == stage)
        query = query.order_by(_sw.created_at, _sw.stage, _sw.attempt, _sw.idx)
        with self._tx() as conn:
            return [decode_stage_worker(r._mapping) for r in conn.execute(query)]

    def add_stage_worker(self, row: StageWorkerRow) -> StageWorkerRow:
        """Plan one more worker (a judge); the existing row if it was planned already."""
        with self._tx(write=True) as conn:
            found = _get_worker_row(conn, row.workflow_id, row.stage, row.attempt, row.idx)
            if found is not None:
                return found
            _insert_worker_row(conn, row)
            found = _get_worker_row(conn, row.workflow_id, row.stage, row.attempt, row.idx)
            assert found is not None
            return found

    def update_stage_worker(self, row: StageWorkerRow, **fields: Any) -> StageWorkerRow:
        check_fields(StageWorkerRow, fields, {"workflow_id", "stage", "attempt", "idx"})
        key = (row.workflow_id, row.stage, row.attempt, row.idx)
        with self._tx(write=True) as conn:
            conn.execute(
                sa.update(workflow_stage_workers)
                .where(_sw.workflow_id == key[0], _sw.stage == key[1])
                .where(_sw.attempt == key[2], _sw.idx == key[3])
                .values(**encode("workflow_stage_workers", fields))
            )
            found = _get_worker_row(conn, *key)
            if found is None:
                raise NotFound(f"no planned worker {row.name} in workflow {row.workflow_id}")
            return found


def _get_workflow(conn: Connection, workflow_id: str) -> WorkflowRow:
    row = conn.execute(sa.select(workflows).where(_wf.id == workflow_id)).first()
    if row is None:
        raise _not_found(workflow_id)
    return decode_workflow(row._mapping)


def _get_stage(conn: Connection, workflow_id: str, name: str) -> StageRow:
    query = sa.select(workflow_stages).where(_st.workflow_id == workflow_id, _st.name == name)
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"workflow {workflow_id} has no stage {name!r}")
    return decode_stage(row._mapping)


def _move_stage(
    conn: Connection,
    workflow_id: str,
    name: str,
    expect_state: StageState | None,
    expect_attempt: int | None,
    fields: dict[str, Any],
    *,
    target: StageState | None = None,
) -> StageRow:
    check_fields(StageRow, fields, {"workflow_id", "name", "position"})
    stage = _get_stage(conn, workflow_id, name)
    if (expect_state is not None and stage.state is not expect_state) or (
        expect_attempt is not None and stage.attempt != expect_attempt
    ):
        raise StageStale(
            f"stage {name!r} of workflow {workflow_id} is {stage.state} (attempt {stage.attempt}), "
            f"not {expect_state} (attempt {expect_attempt}) as expected"
        )
    wanted = target or (StageState(fields["state"]) if "state" in fields else None)
    values = dict(fields)
    if wanted is not None:
        if wanted is not stage.state:
            check_stage_transition(stage.state, wanted)
        values["state"] = wanted
    moved = conn.execute(
        sa.update(workflow_stages)
        .where(_st.workflow_id == workflow_id, _st.name == name)
        .where(_st.state == stage.state.value, _st.attempt == stage.attempt)
        .values(**encode("workflow_stages", values))
    )
    if moved.rowcount != 1:  # another writer got in between (PostgreSQL read committed)
        raise StageStale(f"stage {name!r} of workflow {workflow_id} changed meanwhile")
    return _get_stage(conn, workflow_id, name)


def _insert_worker_row(conn: Connection, row: StageWorkerRow) -> None:
    values = encode("workflow_stage_workers", row.__dict__)
    values["created_at"] = row.created_at or time.time()
    conn.execute(sa.insert(workflow_stage_workers).values(**values))


def _get_worker_row(
    conn: Connection, workflow_id: str, stage: str, attempt: int, idx: int
) -> StageWorkerRow | None:
    query = (
        sa.select(workflow_stage_workers)
        .where(_sw.workflow_id == workflow_id, _sw.stage == stage)
        .where(_sw.attempt == attempt, _sw.idx == idx)
    )
    found = conn.execute(query).first()
    return None if found is None else decode_stage_worker(found._mapping)
