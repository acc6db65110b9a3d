"""The daemon's coordination side: the bus, messages and their delivery, teams, swarms,
the blackboard, checkpoints and tasks, made once over one store and wired to each other.

Every coordination object reports its changes as events on the bus, so one stream
(GET /events, and the WebSocket built on it) shows workers, messages, teams and tasks
alike (`task.created`, `task.claimed`, `task.lease_expired`, `task.done`, ...).

Three loops run beside the API: message delivery; the lease sweep, which every
`lease_sweep_s` puts tasks whose holder stopped renewing back in the queue (a claim
that finds nothing also sweeps, so this bounds how long an expired task sits unseen);
and the event log's retention, which every `retention_every_s` deletes the events
`[bus] keep_days` / `keep_events` no longer keep (store/bus_retention.py), counting them
as `bus.events_pruned` (/health, and /metrics as flotilla_events_pruned_total).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from sqlalchemy.engine import Connection

from flotilla.bus.hooks import event_publisher, payload_envelope, worker_state_publisher
from flotilla.bus.inprocess import InProcessTransport
from flotilla.config.schema import BusConfig
from flotilla.counters import count
from flotilla.domain.errors import NotFound
from flotilla.domain.tasks import EventKind, Task
from flotilla.domain.worker import Worker
from flotilla.orchestrator.checkpoints import Checkpoints
from flotilla.orchestrator.coordination import Coordination
from flotilla.orchestrator.delivery_loop import DeliveryLoop
from flotilla.orchestrator.messaging import MessageService, team_of
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.tasks import TaskService
from flotilla.server.fastlane import FastRoute
from flotilla.server.routes_coordination import coordination_fast_routes, coordination_router
from flotilla.server.routes_messages import message_router
from flotilla.server.routes_tasks import task_fast_routes, task_router
from flotilla.store.base import Store
from flotilla.store.bus_retention import prune_events
from flotilla.store.bus_sql import append_many_in, bus_store
from flotilla.store.sql import SqlStore

log = logging.getLogger(__name__)

LEASE_SWEEP_S = 2.0
RETENTION_FIRST_S = 60.0  # the first prune: soon, but not in the rush of a start
RETENTION_EVERY_S = 600.0
TASK_EVENT_PREFIX = "task."


def task_publisher(
    publish: Callable[[str, dict[str, Any]], None], bus: InProcessTransport | None = None
) -> Callable[[Task, EventKind], None]:
    """TaskService's `on_change`: each stored move as a `task.<kind>` event about the task,
    in its team (the payload is the task as stored after the move). With `bus`, a claim's
    event was stored by the claim's transaction (`store_in_tx`): only wake the bus."""

    def on_change(task: Task, kind: EventKind) -> None:
        if bus is not None and kind is EventKind.CLAIMED:
            bus.notify()
            return
        publish(f"{TASK_EVENT_PREFIX}{kind.value}", task.to_dict())

    return on_change


def store_in_tx(conn: Connection, moved: list[Task], kind: EventKind) -> None:
    """TaskStore's `event_in_tx`: the moves' `task.<kind>` events, in the moves' transaction."""
    kind_name = f"{TASK_EVENT_PREFIX}{kind.value}"
    append_many_in(conn, [payload_envelope(kind_name, task.to_dict()) for task in moved])


@dataclass
class CoordinationSide:
    bus: InProcessTransport
    messages: MessageService
    delivery: DeliveryLoop
    teams: Coordination
    checkpoints: Checkpoints
    tasks: TaskService
    store: Store
    lease_sweep_s: float = LEASE_SWEEP_S
    retention: BusConfig = field(default_factory=BusConfig)
    retention_first_s: float = RETENTION_FIRST_S
    retention_every_s: float = RETENTION_EVERY_S
    sweeps: int = field(default=0, init=False)  # lease sweeps begun (tests wait on it)
    prunes: int = field(default=0, init=False)  # retention runs ended, failed ones too
    events_pruned: int = field(default=0, init=False)

    @classmethod
    async def start(
        cls,
        service: FleetService,
        *,
        lease_sweep_s: float = LEASE_SWEEP_S,
        retention: BusConfig | None = None,
        retention_first_s: float = RETENTION_FIRST_S,
        retention_every_s: float = RETENTION_EVERY_S,
    ) -> CoordinationSide:
        """`retention`: the `[bus]` settings (the daemon's: user file and environment)."""
        store = service.store
        bus = InProcessTransport(bus_store(store))  # the store's event log, fanned out
        await bus.start()
        if isinstance(store, SqlStore):
            store.on_state_change = worker_state_publisher(bus)  # worker.state events
        publish = event_publisher(bus)
        teams = Coordination(service, on_event=publish, bus=bus)  # posts: event in their tx

        def team_workers(project: str, team: str) -> list[Worker]:
            """A broadcast's recipients: the team's members, or the batch/default team."""
            try:
                names = {member.agent for member in teams.store.get_team(team).members}
            except NotFound:
                count("daemon.broadcast_to_implicit_team")
                names = set()
            return [
                w
                for w in store.list_workers(project=project)
                if w.name in names or team in team_of(w)
            ]

        messages = MessageService(store, service, bus, members=team_workers)
        delivery = DeliveryLoop(messages, bus=bus)
        tasks = TaskService(store, on_change=task_publisher(publish, bus), event_in_tx=store_in_tx)
        checkpoints = Checkpoints(service, on_event=publish)
        return cls(
            bus,
            messages,
            delivery,
            teams,
            checkpoints,
            tasks,
            store,
            lease_sweep_s,
            retention or BusConfig(),
            retention_first_s,
            retention_every_s,
        )

    def routers(self, service: FleetService) -> list[APIRouter]:
        return [
            message_router(self.messages),
            coordination_router(service, self.teams, self.checkpoints),
            task_router(self.tasks),
        ]

    def fast_routes(self) -> list[FastRoute]:
        """The agents' frequent calls, for the fast lane (server/fastlane.py)."""
        return [*coordination_fast_routes(self.teams), *task_fast_routes(self.tasks)]

    def worker_ended(self, worker: Worker) -> None:
        self.delivery.worker_ended(worker)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver messages, sweep expired leases and prune the event log until `stop`."""
        await asyncio.gather(
            self.delivery.run(stop), self.sweep_leases(stop), self.prune_events(stop)
        )

    async def sweep_leases(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sweeps += 1
            try:
                await asyncio.to_thread(self.tasks.expire_leases)
            except Exception:  # one failed sweep (a locked or lost database) is not the end
                count("tasks.lease_sweep_failed")
                log.exception("sweeping expired task leases failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.lease_sweep_s)

    async def prune_events(self, stop: asyncio.Event) -> None:
        """The event log's retention, first after `retention_first_s`, then every
        `retention_every_s`; each run in a thread (it is a few short transactions)."""
        keep = self.retention
        if keep.keep_days == 0 and keep.keep_events == 0:
            return  # both limits off: the log is kept whole
        wait = self.retention_first_s
        while not await _stopped(stop, wait):
            wait = self.retention_every_s
            try:
                pruned = await asyncio.to_thread(
                    prune_events,
                    self.store,
                    keep_days=keep.keep_days,
                    keep_events=keep.keep_events,
                    now=time.time(),
                )
            except Exception:  # a locked or lost database: the next run tries again
                count("bus.prune_failed")
                log.exception("pruning the event log failed")
                pruned = 0
            if pruned:
                self.events_pruned += pruned
                count("bus.events_pruned", pruned)
                log.info("pruned %d old events from the event log", pruned)
            self.prunes += 1

    async def close(self) -> None:
        await self.bus.close()


async def _stopped(stop: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `stop`; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)
    return stop.is_set()
