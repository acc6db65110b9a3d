"""The store on SQLAlchemy Core: one class for SQLite and PostgreSQL alike.

Races are settled by compare-and-set: every state or status move is an
`UPDATE ... WHERE id = ? AND state = <the state just read>`; when it matches no
row, someone else moved first, and the move is read and judged again.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from flotilla import counters
from flotilla.domain.errors import IllegalTransition, OperationFailed, UsageError
from flotilla.domain.names import validate_name
from flotilla.domain.states import WorkerState, check_transition
from flotilla.domain.worker import Worker
from flotilla.store.base import ACTIVE_STATES, PROMPT_MOVES, HistoryRow, PromptRow, PromptStatus
from flotilla.store.codec import (
    decode_worker,
    encode_update,
    encode_worker,
    to_state,
)
from flotilla.store.engine import WRITE, is_sqlite, redact
from flotilla.store.errors import StaleState, StoreUnavailable
from flotilla.store.schema import WORKER_SEQ, prompts, sequences, worker_events, workers
from flotilla.store.worker_cache import WorkerCache
from flotilla.store.worker_rows import (
    add_history_row,
    duplicate_name,
    prompt_by_id,
    prompt_row,
    state_of,
    worker_by_id,
    worker_by_name,
    worker_not_found,
)

R = TypeVar("R", bound=Worker | None)

# How often a compare-and-set is retried after losing a race before giving up.
# Each loss means another writer made progress, so this is never reached in practice.
_CAS_TRIES = 100


class SqlStore:
    """The Store protocol over a SQLAlchemy engine whose schema is at head."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = is_sqlite(engine)
        self._write_lock = threading.Lock()
        # Called after a worker was created (previous None) or changed state, once committed:
        # the daemon publishes `worker.state` events through it (flotilla.bus.hooks).
        self.on_state_change: Callable[[Worker, WorkerState | None], None] | None = None
        self._cache: WorkerCache | None = None

    def cache_workers(self) -> None:
        """Serve worker reads from memory from now on: for the store's one writer only
        (the daemon; see store/worker_cache.py)."""
        if self._cache is None:
            self._cache = WorkerCache()

    @property
    def url(self) -> str:
        return redact(self._engine.url)

    @property
    def engine(self) -> Engine:
        return self._engine

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"

    # -- transactions --------------------------------------------------------

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        """One transaction; on SQLite a writing one takes the write lock up front.

        SQLite lets one writer in at a time, and a writer that finds the lock taken
        polls for it with sleeps that grow to 100 ms. Writers of this process queue on
        a thread lock instead, so each goes in the moment the one before it is done.
        """
        serialize = write and self._sqlite
        try:
            with self._write_lock if serialize else nullcontext(), self._engine.connect() as conn:
                if serialize:
                    conn.execution_options(**{WRITE: True})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"the store at {self.url} failed: {exc.orig}") from exc

    # -- workers -------------------------------------------------------------

    def create_worker(self, worker: Worker) -> Worker:
        """Insert `worker`, numbering it with the next admission number (its seq).

        A zero created_at is set to now.
        """
        validate_name(worker.name)
        try:
            with self._tx(write=True) as conn:
                if worker_by_name(conn, worker.project, worker.name) is not None:
                    raise duplicate_name(worker.name)
                seq_row = sequences.c.name == WORKER_SEQ
                conn.execute(
                    sa.update(sequences).where(seq_row).values(value=sequences.c.value + 1)
                )
                seq = conn.execute(sa.select(sequences.c.value).where(seq_row)).scalar_one()
                created = dataclasses.replace(
                    worker,
                    state=to_state(worker.state),
                    seq=int(seq),
                    created_at=worker.created_at or time.time(),
                )
                conn.execute(sa.insert(workers).values(**encode_worker(created)))
            if self._cache is not None:
                self._cache.changed(created.id)
            if self.on_state_change is not None:
                self.on_state_change(created, None)
            return created
        except IntegrityError as exc:
            # Lost a race with another creator between our check and our insert.
            if self.find_worker(worker.project, worker.name) is not None:
                raise duplicate_name(worker.name) from exc
            with self._tx() as conn:
                taken = conn.execute(sa.select(workers.c.id).where(workers.c.id == worker.id))
                if taken.first() is not None:
                    raise UsageError(
                        f"a worker with id {worker.id!r} already exists: give each worker a new id"
                    ) from exc
            raise OperationFailed(f"could not store worker {worker.name!r}: {exc.orig}") from exc

    def get_worker(self, worker_id: str) -> Worker:
        cached = None if self._cache is None else self._cache.get(worker_id)
        return self._read_through(cached, lambda conn: worker_by_id(conn, worker_id))

    def find_worker(self, project: str, name: str) -> Worker | None:
        cached = None if self._cache is None else self._cache.find(project, name)
        return self._read_through(cached, lambda conn: worker_by_name(conn, project, name))

    def _read_through(self, cached: Worker | None, read: Callable[[Connection], R]) -> R | Worker:
        """`cached` if the cache had the worker, else `read` in a transaction, kept in the
        cache (if on) unless a write came in meanwhile."""
        if cached is not None:
            return cached
        generation = 0 if self._cache is None else self._cache.generation
        with self._tx() as conn:
            found = read(conn)
        if self._cache is not None and found is not None:
            self._cache.read(found, generation)
        return found

    def cached_worker(self, project: str, name: str) -> Worker | None:
        """The worker from memory, without touching the database (None: not cached,
        or the cache is off): lets the event loop answer without a thread hop."""
        return None if self._cache is None else self._cache.find(project, name)

    def list_workers(
        self,
        project: str | None = None,
        states: Iterable[WorkerState | str] | None = None,
        batch: str | None = None,
        names_glob: str | None = None,
    ) -> list[Worker]:
        """Workers in admission order; names_glob is a shell pattern (`fix-*`)."""
        query = sa.select(workers).order_by(workers.c.seq)
        if project is not None:
            query = query.where(workers.c.project == project)
        if states is not None:
            wanted = sorted({to_state(s).value for s in states})
            query = query.where(workers.c.state.in_(wanted))
        if batch is not None:
            query = query.where(workers.c.batch == batch)
        with self._tx() as conn:
            found = [decode_worker(row._mapping) for row in conn.execute(query)]
        if names_glob is not None:
            found = [w for w in found if fnmatch.fnmatchcase(w.name, names_glob)]
        return found

    def update_worker(
        self, worker_id: str, *, expect_state: WorkerState | None = None, **fields: Any
    ) -> Worker:
        """Change fields of one worker in one transaction and return it as stored.

        A `state` among the fields is checked against the stored state
        (IllegalTransition) and recorded in the history in the same transaction.
        With expect_state, the update happens only if the worker is still in
        that state, else StaleState.
        """
        values = encode_update(fields)
        target = to_state(fields["state"]) if "state" in fields else None
        expected = None if expect_state is None else to_state(expect_state)
        for _ in range(_CAS_TRIES):
            with self._tx(write=True) as conn:
                current = state_of(conn, worker_id)
                if expected is not None and current != expected:
                    raise StaleState(worker_id, expected, current)
                if target is not None:
                    check_transition(current, target)
                if values:
                    moved = conn.execute(
                        sa.update(workers)
                        .where(workers.c.id == worker_id, workers.c.state == current.value)
                        .values(**values)
                    )
                    if moved.rowcount != 1:
                        counters.count("store.cas_retry")
                        continue
                if target is not None:
                    add_history_row(
                        conn, worker_id, "state", {"from": current.value, "to": target.value}
                    )
                updated = worker_by_id(conn, worker_id)
            if self._cache is not None:
                self._cache.changed(worker_id)
            if target is not None and self.on_state_change is not None:
                self.on_state_change(updated, current)
            return updated
        raise OperationFailed(f"worker {worker_id} kept changing while being updated; try again")

    def delete_worker(self, worker_id: str) -> None:
        """Delete a worker with its prompts and history."""
        with self._tx(write=True) as conn:
            gone = conn.execute(sa.delete(workers).where(workers.c.id == worker_id))
            if gone.rowcount == 0:
                raise worker_not_found(worker_id)
        if self._cache is not None:
            self._cache.changed(worker_id)

    def count_active(self, project: str) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(workers)
            .where(
                workers.c.project == project,
                workers.c.state.in_(sorted(s.value for s in ACTIVE_STATES)),
            )
        )
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    # -- follow-up prompts ---------------------------------------------------

    def add_prompt(self, worker_id: str, text: str) -> int:
        try:
            with self._tx(write=True) as conn:
                state_of(conn, worker_id)
                added = conn.execute(
                    sa.insert(prompts).values(
                        worker_id=worker_id,
                        text=text,
                        status=PromptStatus.PENDING.value,
                        created_at=time.time(),
                        attempt=0,
                    )
                )
        except IntegrityError as exc:  # the worker was deleted meanwhile
            raise worker_not_found(worker_id) from exc
        key = added.inserted_primary_key
        assert key is not None
        return int(key[0])

    def pending_prompts(self, worker_id: str) -> list[PromptRow]:
        query = (
            sa.select(prompts)
            .where(prompts.c.worker_id == worker_id, prompts.c.status == PromptStatus.PENDING)
            .order_by(prompts.c.id)
        )
        with self._tx() as conn:
            return [prompt_row(row._mapping) for row in conn.execute(query)]

    def take_next_prompt(self, worker_id: str) -> PromptRow | None:
        """Claim the oldest pending prompt (status delivering), or None if there is none.

        Only one caller can claim a given prompt; the claimer then marks it
        delivered, failed, or pending again to retry.
        """
        oldest = (
            sa.select(prompts.c.id)
            .where(prompts.c.worker_id == worker_id, prompts.c.status == PromptStatus.PENDING)
            .order_by(prompts.c.id)
            .limit(1)
        )
        for _ in range(_CAS_TRIES):
            with self._tx(write=True) as conn:
                prompt_id = conn.execute(oldest).scalar()
                if prompt_id is None:
                    return None
                claimed = conn.execute(
                    sa.update(prompts)
                    .where(prompts.c.id == prompt_id, prompts.c.status == PromptStatus.PENDING)
                    .values(status=PromptStatus.DELIVERING.value, attempt=prompts.c.attempt + 1)
                )
                if claimed.rowcount == 1:
                    return prompt_by_id(conn, int(prompt_id))
            counters.count("store.cas_retry")
        raise OperationFailed(f"could not claim a prompt of worker {worker_id}; try again")

    def mark_prompt(self, prompt_id: int, status: PromptStatus | str) -> PromptRow:
        """Move a prompt to `status`; a delivered prompt never moves again."""
        try:
            target = PromptStatus(status)
        except ValueError as exc:
            choices = ", ".join(s.value for s in PromptStatus)
            raise UsageError(f"prompt status {status!r} is not one of {choices}") from exc
        for _ in range(_CAS_TRIES):
            with self._tx(write=True) as conn:
                current = prompt_by_id(conn, prompt_id).status
                if target not in PROMPT_MOVES[current]:
                    raise IllegalTransition(f"a {current} prompt cannot become {target}")
                values: dict[str, Any] = {"status": target.value}
                if target is PromptStatus.DELIVERED:
                    values["delivered_at"] = time.time()
                moved = conn.execute(
                    sa.update(prompts)
                    .where(prompts.c.id == prompt_id, prompts.c.status == current.value)
                    .values(**values)
                )
                if moved.rowcount == 1:
                    return prompt_by_id(conn, prompt_id)
            counters.count("store.cas_retry")
        raise OperationFailed(f"prompt {prompt_id} kept changing while being marked; try again")

    # -- history -------------------------------------------------------------

    def add_history(self, worker_id: str, kind: str, detail: dict[str, Any] | None = None) -> int:
        try:
            with self._tx(write=True) as conn:
                state_of(conn, worker_id)
                return add_history_row(conn, worker_id, kind, detail or {})
        except IntegrityError as exc:  # the worker was deleted meanwhile
            raise worker_not_found(worker_id) from exc

    def history(self, worker_id: str) -> list[HistoryRow]:
        query = (
            sa.select(worker_events)
            .where(worker_events.c.worker_id == worker_id)
            .order_by(worker_events.c.id)
        )
        with self._tx() as conn:
            return [
                HistoryRow(
                    id=row.id,
                    worker_id=row.worker_id,
                    at=row.at,
                    kind=row.kind,
                    detail=json.loads(row.detail),
                )
                for row in conn.execute(query)
            ]

    # -- lifecycle -----------------------------------------------------------

    def ping(self) -> bool:
        """True if the database answers a query now."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.select(1))
        except SQLAlchemyError:
            counters.count("store.ping_failed")
            return False
        return True

    def close(self) -> None:
        self._engine.dispose()
