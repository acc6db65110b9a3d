"""Group commit: concurrent claims share transactions and never take a task twice; a
failing write in a batch fails only its own caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from flotilla.orchestrator.tasks import TaskService
from flotilla.store import SqlStore
from flotilla.store.group_commit import GroupCommit

CLAIMERS = 50


def test_fifty_concurrent_claims_share_transactions_and_never_collide(
    tasks: TaskService, sql_store: SqlStore
) -> None:
    made = {tasks.create("crew", f"job {i}").id for i in range(CLAIMERS + 10)}

    async def claim_all() -> list[str | None]:
        claims = [tasks.claim_soon(f"agent-{i}", team="crew") for i in range(CLAIMERS)]
        got = await asyncio.gather(*claims)
        return [None if task is None else task.id for task in got]

    claimed = asyncio.run(claim_all())
    assert None not in claimed
    assert len(set(claimed)) == CLAIMERS  # no task twice
    assert set(claimed) <= made
    assert tasks._writes.batches < CLAIMERS  # some claims were committed together
    for i, task_id in enumerate(claimed):  # the store agrees with each answer
        stored = tasks.get(str(task_id))
        assert stored.assignee == f"agent-{i}" and stored.attempts == 1


def test_an_empty_queue_answers_none(tasks: TaskService) -> None:
    assert asyncio.run(tasks.claim_soon("agent-1", team="crew")) is None


def test_a_failing_write_fails_only_its_caller(sql_store: SqlStore) -> None:
    probe = sa.Table("gc_probe", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True))
    probe.create(sql_store.engine)
    group = GroupCommit(lambda: sql_store._tx(write=True))

    async def insert(n: int) -> int:
        def write(conn: sa.Connection) -> int:
            conn.execute(sa.insert(probe).values(n=n))
            return n

        return await group.run(write)

    async def all_writes() -> list[int | BaseException]:
        numbers = [1, 2, 3, 2, 4]  # the second 2 breaks the primary key
        return await asyncio.gather(*(insert(n) for n in numbers), return_exceptions=True)

    outcomes = asyncio.run(all_writes())
    assert outcomes[:3] == [1, 2, 3] and outcomes[4] == 4
    assert isinstance(outcomes[3], IntegrityError)
    with sql_store.engine.connect() as conn:
        stored = sorted(conn.execute(sa.select(probe.c.n)).scalars())
    assert stored == [1, 2, 3, 4]


@pytest.mark.parametrize("size", [1, 3])
def test_batches_hold_at_most_max_batch_writes(sql_store: SqlStore, size: int) -> None:
    group = GroupCommit(lambda: sql_store._tx(write=True), max_batch=size)

    def echo(n: int) -> Callable[[sa.Connection], int]:
        return lambda conn: int(conn.execute(sa.select(sa.literal(n))).scalar_one())

    async def writes() -> list[int]:
        return list(await asyncio.gather(*(group.run(echo(n)) for n in range(7))))

    assert asyncio.run(writes()) == list(range(7))
    assert group.batches >= -(-7 // size)
