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
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from flotilla import counters

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")
Many = Callable[[Connection, list[Any]], list[Any]]  # items -> one result per item, in order
Transaction = Callable[[], contextlib.AbstractContextManager[Connection]]

MAX_BATCH = 128  # writes per transaction at most


class _Outcome:
    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error


def _each(conn: Connection, writes: list[Callable[[Connection], Any]]) -> list[Any]:
    return [write(conn) for write in writes]


class GroupCommit:
    """`await group.run(write)`: `write(conn)` committed with the writes waiting beside it.
    `await group.add(many, item)`: the items added with the same `many` in one batch go
    to one call `many(conn, items)`, which writes them all at once (multi-row statements)
    and returns one result per item."""

    def __init__(self, transaction: Transaction, *, max_batch: int = MAX_BATCH) -> None:
        self._transaction = transaction
        self._max_batch = max_batch
        self._waiting: list[tuple[Many, Any, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (for tests and benchmarks)

    async def run(self, write: Callable[[Connection], T]) -> T:
        result: T = await self.add(_each, write)
        return result

    async def add(self, many: Callable[[Connection, list[Item]], list[T]], item: Item) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((many, item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        while self._waiting:  # bounded: each round takes at least one waiting write
            batch = self._waiting[: self._max_batch]
            del self._waiting[: len(batch)]
            try:
                outcomes = await asyncio.to_thread(self._commit, [(m, i) for m, i, _ in batch])
            except BaseException as exc:  # cancelled (the loop is closing): tell every caller
                counters.count("store.group_commit_aborted")
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # its caller went away (a client disconnected)
                if outcome.error is not None:
                    future.set_exception(outcome.error)
                else:
                    future.set_result(outcome.value)

    def _commit(self, batch: list[tuple[Many, Any]]) -> list[_Outcome]:
        """In a store thread: the batch in one transaction, or each alone if one fails."""
        if len(batch) > 1:
            groups: dict[Many, list[int]] = {}
            for index, (many, _) in enumerate(batch):
                groups.setdefault(many, []).append(index)
            outcomes: list[_Outcome] = [_Outcome()] * len(batch)
            try:
                with self._transaction() as conn:
                    for many, indexes in groups.items():
                        values = many(conn, [batch[i][1] for i in indexes])
                        for i, value in zip(indexes, values, strict=True):
                            outcomes[i] = _Outcome(value)
                self.batches += 1
                return outcomes
            except Exception:
                counters.count("store.group_commit_split")  # rolled back: each on its own
                log.debug("a batched write failed; running the batch one by one", exc_info=True)
        return [self._alone(many, item) for many, item in batch]

    def _alone(self, many: Many, item: Any) -> _Outcome:
        try:
            with self._transaction() as conn:
                (value,) = many(conn, [item])
            self.batches += 1
            return _Outcome(value)
        except Exception as exc:  # noqa: BLE001 - raised in its caller, by the future
            counters.count("store.group_commit_write_failed")
            return _Outcome(error=exc)
