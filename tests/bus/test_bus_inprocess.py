"""The in-process transport over the real store: fan-out to many subscribers in order,
resume by cursor (after a disconnect and after a restart), slow subscribers, filters."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from flotilla import counters
from flotilla.bus.envelope import Envelope, Event
from flotilla.bus.filters import EventFilter
from flotilla.bus.inprocess import InProcessSubscription, InProcessTransport
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.store import SqlStore, open_store
from flotilla.store.bus_sql import BusStore, bus_store

ALL = EventFilter()


def envelope(i: int, kind: str = "test.tick", **fields: str) -> Envelope:
    return Envelope.new(kind, "tester", {"i": i}, **fields)  # type: ignore[arg-type]


async def take(sub: InProcessSubscription, n: int, timeout: float = 30) -> list[Event]:
    got: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        event = await sub.next(max(left, 0.0))
        if event is None:
            raise AssertionError(f"only {len(got)} of {n} events within {timeout}s")
        got.append(event)
    return got


@pytest.fixture
def log(lite_store: SqlStore) -> BusStore:
    return bus_store(lite_store)


async def test_200_subscribers_each_get_every_event_once_in_order(log: BusStore) -> None:
    async with InProcessTransport(log, queue_size=2000) as bus:
        subs = [bus.subscribe(ALL) for _ in range(200)]
        # Published from another thread, as the service's worker threads do.
        await asyncio.to_thread(lambda: [bus.publish(envelope(i)) for i in range(300)])
        results = await asyncio.gather(*(take(s, 300) for s in subs))
        for got in results:
            assert [e.envelope.payload["i"] for e in got] == list(range(300))
            assert [e.seq for e in got] == list(range(1, 301))
        assert all(await asyncio.gather(*(s.next(0.05) for s in subs[:5]))) is False
        for sub in subs:
            await sub.close()
        assert bus.subscribers == 0


async def test_a_resumed_subscriber_misses_nothing_and_gets_nothing_twice(log: BusStore) -> None:
    async with InProcessTransport(log) as bus:
        first = bus.subscribe(ALL, since=0)
        for i in range(50):
            bus.publish(envelope(i))
        got = await take(first, 20)
        cursor = first.cursor
        await first.close()  # the client disconnects after 20 events...
        for i in range(50, 120):
            bus.publish(envelope(i))  # ...and misses these while away
        again = bus.subscribe(ALL, since=cursor)
        rest = await take(again, 100)
        assert await again.next(0.2) is None
        numbers = [e.envelope.payload["i"] for e in got + rest]
        assert numbers == list(range(120))
        bus.publish(envelope(120))  # and it follows the live feed afterwards
        assert (await take(again, 1))[0].envelope.payload["i"] == 120


async def test_a_cursor_survives_a_restart_of_the_transport_and_the_store(
    lite_store: SqlStore, bus_sqlite_url: str
) -> None:
    async with InProcessTransport(bus_store(lite_store)) as bus:
        sub = bus.subscribe(ALL)
        for i in range(10):
            bus.publish(envelope(i))
        cursor = (await take(sub, 4))[-1].seq
    lite_store.close()
    reopened = open_store(bus_sqlite_url)
    try:
        async with InProcessTransport(bus_store(reopened)) as bus:
            resumed = bus.subscribe(ALL, since=cursor)
            got = await take(resumed, 6)
            assert [e.envelope.payload["i"] for e in got] == list(range(4, 10))
            fresh = bus.subscribe(ALL)  # no cursor: only what comes from now on
            bus.publish(envelope(10))
            assert [e.envelope.payload["i"] for e in await take(fresh, 1)] == [10]
    finally:
        reopened.close()


async def test_a_slow_subscriber_does_not_hold_up_the_others_and_still_gets_all(
    log: BusStore,
) -> None:
    counters.reset()
    async with InProcessTransport(log, queue_size=10, page=25) as bus:
        slow = bus.subscribe(ALL)
        fast = [bus.subscribe(ALL) for _ in range(5)]
        consumers = [asyncio.create_task(take(s, 200)) for s in fast]
        for i in range(200):
            bus.publish(envelope(i))
            if i % 20 == 0:
                await asyncio.sleep(0)  # let the dispatcher and the fast ones run
        started = time.monotonic()
        results = await asyncio.gather(*consumers)
        assert time.monotonic() - started < 10
        for got in results:
            assert [e.envelope.payload["i"] for e in got] == list(range(200))
        assert slow.behind and slow.overflows >= 1  # it fell behind: it reads the log itself
        late = await take(slow, 200)
        assert [e.envelope.payload["i"] for e in late] == list(range(200))
        assert not slow.behind  # caught up: back on the live feed
        bus.publish(envelope(200))
        assert (await take(slow, 1))[0].envelope.payload["i"] == 200
    assert counters.snapshot().get("bus.subscriber_overflow", 0) >= 1


async def test_filters_choose_by_kind_subject_and_team(log: BusStore) -> None:
    async with InProcessTransport(log) as bus:
        workers = bus.subscribe(EventFilter.of("worker"))
        red = bus.subscribe(EventFilter.of(teams="red"))
        one = bus.subscribe(EventFilter.of("message", subjects="m-1"))
        bus.publish(envelope(0, "worker.state", subject="w1"))
        bus.publish(envelope(1, "message.sent", subject="m-1", team="red"))
        bus.publish(envelope(2, "message.sent", subject="m-2", team="red"))
        bus.publish(envelope(3, "workers.other"))
        bus.publish(envelope(4, "message.read", subject="m-1"))
        assert [e.envelope.payload["i"] for e in await take(workers, 1)] == [0]
        assert [e.envelope.payload["i"] for e in await take(red, 2)] == [1, 2]
        assert [e.envelope.payload["i"] for e in await take(one, 2)] == [1, 4]
        assert await workers.next(0.2) is None


async def test_events_appended_by_another_writer_reach_subscribers(log: BusStore) -> None:
    """Another process (or a store transaction) appends to the log directly: the dispatcher
    finds the events on its next poll, or at once when notified."""
    async with InProcessTransport(log, poll_s=0.1) as bus:
        sub = bus.subscribe(ALL)
        await asyncio.to_thread(log.append, envelope(0))
        assert (await take(sub, 1, timeout=5))[0].envelope.payload["i"] == 0
        threading.Thread(target=lambda: (log.append(envelope(1)), bus.notify())).start()
        assert (await take(sub, 1, timeout=5))[0].envelope.payload["i"] == 1


async def test_closing_the_transport_ends_every_subscription(log: BusStore) -> None:
    bus = InProcessTransport(log)
    with pytest.raises(OperationFailed, match="not running"):
        bus.subscribe(ALL)
    await bus.start()
    with pytest.raises(UsageError, match="negative"):
        bus.subscribe(ALL, since=-1)
    sub = bus.subscribe(ALL)
    waiting = asyncio.create_task(anext(sub))
    await asyncio.sleep(0.05)
    await bus.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    bus.publish(envelope(0))  # still durable, for the next cursor reader
    assert log.head() == 1
