"""Row-level helpers of the workers, prompts and history tables, inside a caller's
transaction: the SqlStore (store/sql.py) builds its methods from them."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flotilla.domain.errors import NotFound, UsageError
from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker
from flotilla.store.base import PromptRow, PromptStatus
from flotilla.store.codec import decode_worker, dump_json
from flotilla.store.schema import prompts, worker_events, workers


def worker_not_found(worker_id: str) -> NotFound:
    return NotFound(f"no worker with id {worker_id!r} (see `fleet ls`)")


def duplicate_name(name: str) -> UsageError:
    return UsageError(
        f"a worker named {name!r} already exists in this project "
        f"(pick another name or `fleet kill {name}` first)"
    )


def worker_by_id(conn: Connection, worker_id: str) -> Worker:
    row = conn.execute(sa.select(workers).where(workers.c.id == worker_id)).first()
    if row is None:
        raise worker_not_found(worker_id)
    return decode_worker(row._mapping)


# Built once (as task_schema's statements are): building the SELECT per call cost as
# much as running it.
_FIND = sa.select(workers).where(
    workers.c.project == sa.bindparam("project"), workers.c.name == sa.bindparam("name")
)


def worker_by_name(conn: Connection, project: str, name: str) -> Worker | None:
    row = conn.execute(_FIND, {"project": project, "name": name}).first()
    return None if row is None else decode_worker(row._mapping)


def state_of(conn: Connection, worker_id: str) -> WorkerState:
    state = conn.execute(sa.select(workers.c.state).where(workers.c.id == worker_id)).scalar()
    if state is None:
        raise worker_not_found(worker_id)
    return WorkerState(state)


def add_history_row(conn: Connection, worker_id: str, kind: str, detail: dict[str, Any]) -> int:
    added = conn.execute(
        sa.insert(worker_events).values(
            worker_id=worker_id, at=time.time(), kind=kind, detail=dump_json(detail)
        )
    )
    key = added.inserted_primary_key
    assert key is not None
    return int(key[0])


def prompt_by_id(conn: Connection, prompt_id: int) -> PromptRow:
    row = conn.execute(sa.select(prompts).where(prompts.c.id == prompt_id)).first()
    if row is None:
        raise NotFound(f"no follow-up prompt with id {prompt_id}")
    return prompt_row(row._mapping)


def prompt_row(row: Any) -> PromptRow:
    return PromptRow(
        id=row["id"],
        worker_id=row["worker_id"],
        text=row["text"],
        status=PromptStatus(row["status"]),
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        attempt=row["attempt"],
    )
