"""The hooks the daemon wires: worker state changes as bus events, the delivery loop woken
by them (and by ended turns), and chained supervisor callbacks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bus_support import PROJECT, add_worker, message_service

from flotilla import counters
from flotilla.bus.envelope import Envelope, Event
from flotilla.bus.filters import EventFilter
from flotilla.bus.hooks import (
    WORKER_STATE,
    event_publisher,
    payload_envelope,
    worker_state_envelope,
    worker_state_publisher,
)
from flotilla.bus.inprocess import InProcessTransport
from flotilla.domain.states import WorkerState
from flotilla.orchestrator.delivery_loop import DeliveryLoop, chain
from flotilla.store import SqlStore
from flotilla.store.bus_sql import bus_store


def test_a_worker_state_change_becomes_an_event_about_that_worker(lite_store: SqlStore) -> None:
    worker = add_worker(lite_store, "w1", WorkerState.RUNNING, team="red")
    envelope = worker_state_envelope(worker, WorkerState.STARTING)
    assert envelope.kind == WORKER_STATE and envelope.subject == worker.id
    assert envelope.team == "red"
    assert envelope.payload["from"] == "starting" and envelope.payload["to"] == "running"
    assert envelope.payload["name"] == "w1" and envelope.payload["project"] == PROJECT
    hook = worker_state_publisher(InProcessTransport(bus_store(lite_store)))
    hook(worker, WorkerState.STARTING)
    [event] = bus_store(lite_store).read(0)
    assert event.kind == WORKER_STATE and event.envelope.payload["to"] == "running"


class BrokenBus:
    def publish(self, envelope: Envelope) -> Event:
        raise RuntimeError("the store is down")


def test_a_failure_to_publish_is_counted_not_raised(lite_store: SqlStore) -> None:
    counters.reset()
    worker = add_worker(lite_store, "w1")
    worker_state_publisher(BrokenBus())(worker, None)  # type: ignore[arg-type]
    event_publisher(BrokenBus())("task.created", {"id": "t-1"})  # type: ignore[arg-type]
    assert counters.snapshot()["bus.worker_event_failed"] == 1
    assert counters.snapshot()["bus.service_event_failed"] == 1


def test_service_events_are_about_their_ids_and_in_their_team(lite_store: SqlStore) -> None:
    envelope = payload_envelope("task.claimed", {"id": "t-1", "team": "red", "by": "w1"})
    assert (envelope.subject, envelope.team) == ("t-1", "red")
    assert payload_envelope("blackboard.post", {"post": 3}).subject is None
    assert payload_envelope("swarm.joined", {"name": "s1", "team": 5}).team is None
    event_publisher(InProcessTransport(bus_store(lite_store)))("team.created", {"name": "red"})
    [event] = bus_store(lite_store).read(0)
    assert event.kind == "team.created" and event.envelope.subject == "red"


async def test_the_delivery_loop_runs_a_pass_on_a_worker_event_or_a_wake(
    lite_store: SqlStore, tmp_path: Path
) -> None:
    messages = message_service(lite_store, tmp_path)
    async with InProcessTransport(bus_store(lite_store), poll_s=0.05) as bus:
        loop = DeliveryLoop(messages, interval_s=60, bus=bus)
        stop = asyncio.Event()
        running = asyncio.create_task(loop.run(stop))

        async def passes_reach(n: int) -> None:
            for _ in range(200):
                if loop.passes >= n:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"{loop.passes} passes, expected {n}")

        await passes_reach(1)  # the first pass at start
        await asyncio.sleep(0.1)  # the watcher subscribes
        worker = add_worker(lite_store, "w1")
        bus.publish(worker_state_envelope(worker, None))
        await passes_reach(2)
        await asyncio.to_thread(loop.worker_ended, worker)  # from the supervisor's thread
        await passes_reach(3)
        stop.set()
        await asyncio.wait_for(running, 10)
    assert bus.subscribers == 0
    assert EventFilter.of("worker.state").matches(worker_state_envelope(worker, None))


def test_chained_hooks_all_run_even_when_one_fails() -> None:
    counters.reset()
    seen: list[Any] = []

    def broken(_: Any) -> None:
        raise RuntimeError("boom")

    chain(seen.append, broken, seen.append)("w")
    assert seen == ["w", "w"]
    assert counters.snapshot()["delivery.chained_hook_failed"] == 1
