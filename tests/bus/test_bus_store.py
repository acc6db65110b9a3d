"""The bus tables on SQLite and PostgreSQL: the migration, the event log (order, cursor,
filters, idempotence, concurrent writers) and compare-and-set message moves."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from flotilla.bus.envelope import Envelope, Event
from flotilla.bus.filters import EventFilter
from flotilla.bus.message import Message, MessageKind, MessageState
from flotilla.domain.errors import IllegalTransition, NotFound, OperationFailed
from flotilla.store import SqlStore
from flotilla.store import bus_schema as bus_schema  # the bus tables on the metadata
from flotilla.store.bus_sql import BusStore, MessageStale, bus_store
from flotilla.store.migrate import alembic_config, current_revision, head_revision
from flotilla.store.schema import metadata

S = MessageState


def message(mid: str, recipient: str = "w1", **fields: object) -> Message:
    values: dict[str, object] = {
        "id": mid,
        "project": "/p",
        "sender": "lead",
        "recipient": recipient,
        "kind": MessageKind.DIRECT,
        "body": f"body of {mid}",
        "worker_id": "wid-1",
    }
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


def test_migration_r0004_builds_the_bus_tables_after_r0003(sql_store: SqlStore) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_revision("r0004_bus").down_revision == "r0003_tasks"
    assert current_revision(sql_store.engine) in {"r0004_bus", head_revision()}
    names = set(sa.inspect(sql_store.engine).get_table_names())
    assert {"events", "messages"} <= names
    with sql_store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        seq = conn.execute(sa.text("SELECT value FROM sequences WHERE name = 'event_seq'"))
        assert seq.scalar() == 0
    assert [d for d in diff if "events" in repr(d) or "messages" in repr(d)] == []


def test_events_get_increasing_cursors_and_read_after_a_cursor(db: BusStore) -> None:
    assert db.head() == 0
    stored = [db.append(Envelope.new("worker.state", "flotilla", {"n": i})) for i in range(5)]
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
    assert db.head() == 5
    assert [e.envelope.payload["n"] for e in db.read(2)] == [2, 3, 4]
    assert [e.seq for e in db.read(0, until=3, limit=2)] == [1, 2]
    assert db.read(5) == []
    assert db.read(0) == stored  # the envelope comes back exactly as published


def test_appending_the_same_envelope_twice_stores_it_once(db: BusStore) -> None:
    envelope = Envelope.new("message.sent", "a", {"x": 1})
    first = db.append(envelope)
    assert db.append(envelope) == first
    assert db.head() == 1


def test_read_filters_like_the_pure_filter(db: BusStore) -> None:
    kinds = ["worker.state", "worker", "workers.x", "message.sent", "message.read", "task.new"]
    for i in range(36):
        db.append(
            Envelope.new(
                kinds[i % 6],
                "s",
                {"i": i},
                subject=f"s{i % 4}",
                team=None if i % 3 == 0 else f"t{i % 3}",
            )
        )
    everything = db.read(0, limit=1000)
    filters = [
        EventFilter.of("worker"),
        EventFilter.of("message.sent,task"),
        EventFilter.of(subjects="s1,s3"),
        EventFilter.of(teams="t2"),
        EventFilter.of("worker,message", subjects="s0", teams="t1,t2"),
        EventFilter.of("work"),  # a prefix of a segment matches nothing
        EventFilter.of("a_%"),  # LIKE wildcards are literal
    ]
    for wanted in filters:
        expected = [e for e in everything if wanted.matches(e.envelope)]
        assert db.read(0, event_filter=wanted, limit=1000) == expected, wanted


def test_concurrent_writers_give_distinct_gapless_seqs_and_a_reader_misses_none(
    db: BusStore,
) -> None:
    """A reader that follows the log by cursor while 8 threads append sees every event
    exactly once, in order: events become visible in seq order."""
    writers, each = 8, 40
    seen: list[Event] = []
    done = threading.Event()

    def follow() -> None:
        cursor = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            finished = done.is_set()
            batch = db.read(cursor, limit=50)
            seen.extend(batch)
            if batch:
                cursor = batch[-1].seq
            elif finished:
                return

    def write(w: int) -> list[int]:
        return [db.append(Envelope.new("k", f"w{w}", {"i": i})).seq for i in range(each)]

    reader = threading.Thread(target=follow)
    reader.start()
    with ThreadPoolExecutor(writers) as pool:
        seqs = [s for batch in pool.map(write, range(writers)) for s in batch]
    done.set()
    reader.join(timeout=60)
    assert sorted(seqs) == list(range(1, writers * each + 1))
    assert [e.seq for e in seen] == sorted(seqs)


def test_messages_are_stored_listed_and_found(db: BusStore) -> None:
    stored = db.add_messages([message("m-1"), message("m-2", "w2"), message("m-3")])
    assert [m.state for m in stored] == [S.PENDING] * 3
    assert all(m.created_at > 0 and m.updated_at > 0 for m in stored)
    assert [m.id for m in db.list_messages("/p", recipient="w1")] == ["m-1", "m-3"]
    assert [m.id for m in db.list_messages("/p", recipient="w1", limit=1)] == ["m-3"]
    assert db.list_messages("/other") == []
    assert db.get_message("m-2").recipient == "w2"
    with pytest.raises(NotFound, match="m-9"):
        db.get_message("m-9")


def test_only_one_of_many_claimers_takes_a_message(db: BusStore) -> None:
    db.add_messages([message("m-1")])
    barrier = threading.Barrier(10)

    def claim(_: int) -> Message | None:
        barrier.wait()
        return db.claim("m-1", lease_s=30)

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(claim, range(10)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].state is S.DELIVERING and winners[0].attempts == 1
    assert winners[0].lease_expires_at is not None


def test_moves_are_compare_and_set_and_legal_only(db: BusStore) -> None:
    db.add_messages([message("m-1")])
    assert db.claim("m-1", lease_s=30) is not None
    queued = db.move("m-1", expect=S.DELIVERING, to=S.PENDING, prompt_id=7)
    assert queued.prompt_id == 7 and queued.lease_expires_at is None
    assert db.claim("m-1", lease_s=30) is None  # queued as a turn: not claimable again
    with pytest.raises(MessageStale, match="pending, not delivering"):
        db.move("m-1", expect=S.DELIVERING, to=S.DELIVERED)
    delivered = db.move("m-1", expect=S.PENDING, to=S.DELIVERED)
    assert delivered.delivered_at is not None
    with pytest.raises(IllegalTransition):
        db.move("m-1", expect=S.DELIVERED, to=S.PENDING)
    with pytest.raises(OperationFailed, match="body"):
        db.move("m-1", expect=S.DELIVERED, to=S.READ, body="changed")
    assert db.move("m-1", expect=S.DELIVERED, to=S.READ).read_at is not None


def test_due_lists_pending_and_expired_deliveries_only(db: BusStore) -> None:
    db.add_messages([message("m-1"), message("m-2"), message("m-3"), message("m-4")])
    db.claim("m-2", lease_s=30)
    db.claim("m-3", lease_s=30, now=time.time() - 100)  # its deliverer died long ago
    db.claim("m-4", lease_s=30)
    db.move("m-4", expect=S.DELIVERING, to=S.FAILED, error="x")
    assert [m.id for m in db.due(time.time())] == ["m-1", "m-3"]
    assert db.take_over("m-2", lease_s=30) is None  # still held
    taken = db.take_over("m-3", lease_s=30)
    assert taken is not None and taken.lease_expires_at is not None
    assert taken.lease_expires_at > time.time()


def test_the_bus_needs_the_sql_store() -> None:
    with pytest.raises(OperationFailed, match="SQL store"):
        bus_store(object())  # type: ignore[arg-type]
