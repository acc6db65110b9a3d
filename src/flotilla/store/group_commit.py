"""Group commit: the writes of concurrent requests, committed in one transaction.

Fifty agents claiming tasks at once would otherwise each pay a hop to a store thread,
a transaction, a commit (on PostgreSQL an fsync, ~5 ms here) and a turn of the event
sequence's row lock, one after the other. Here each request hands its write to the
store as a function of the connection and awaits its result; one drainer runs every
write waiting at that moment in one transaction, in arrival order, while the next
batch gathers. Each write sees the ones before it, so claims in one batch never take
the same task, and each still decides from the database alone.

A write that raises rolls its whole batch back; the batch is then run again with each
write in a transaction of its own, so the failure reaches only its own caller. Writes
must therefore do nothing but database work (side effects go after the await).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection

from flotilla import counters

log = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[Connection], Any]
Transaction = Callable[[], contextlib.AbstractContextManager[Connection]]

MAX_BATCH = 128  # writes per transaction at most


class _Outcome(Generic[T]):
    __slots__ = ("error", "value")

    def __init__(self, value: T | None = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error


class GroupCommit:
    """`await group.run(write)`: `write(conn)` committed with the writes waiting beside it."""

    def __init__(self, transaction: Transaction, *, max_batch: int = MAX_BATCH) -> None:
        self._transaction = transaction
        self._max_batch = max_batch
        self._waiting: list[tuple[Write, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (for tests and benchmarks)

    async def run(self, write: Callable[[Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((write, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        while self._waiting:  # bounded: each round takes at least one waiting write
            batch = self._waiting[: self._max_batch]
            del self._waiting[: len(batch)]
            try:
                outcomes = await asyncio.to_thread(self._commit, [w for w, _ in batch])
            except BaseException as exc:  # cancelled (the loop is closing): tell every caller
                counters.count("store.group_commit_aborted")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # its caller went away (a client disconnected)
                if outcome.error is not None:
                    future.set_exception(outcome.error)
                else:
                    future.set_result(outcome.value)

    def _commit(self, writes: list[Write]) -> list[_Outcome[Any]]:
        """In a store thread: the batch in one transaction, or each alone if one fails."""
        if len(writes) > 1:
            try:
                with self._transaction() as conn:
                    values = [write(conn) for write in writes]
                self.batches += 1
                return [_Outcome(value) for value in values]
            except Exception:
                counters.count("store.group_commit_split")  # rolled back: each on its own
                log.debug("a batched write failed; running the batch one by one", exc_info=True)
        return [self._alone(write) for write in writes]

    def _alone(self, write: Write) -> _Outcome[Any]:
        try:
            with self._transaction() as conn:
                value = write(conn)
            self.batches += 1
            return _Outcome(value)
        except Exception as exc:  # noqa: BLE001 - raised in its caller, by the future
            counters.count("store.group_commit_write_failed")
            return _Outcome(error=exc)
