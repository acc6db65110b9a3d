"""The daemon's coordination side: the bus, messages and their delivery, teams, swarms,
the blackboard, checkpoints and tasks, made once over one store and wired to each other.

Every coordination object reports its changes as events on the bus, so one stream
(GET /events, and the WebSocket built on it) shows workers, messages, teams and tasks
alike (`task.created`, `task.claimed`, `task.lease_expired`, `task.done`, ...).

Two loops run beside the API: message delivery, and the lease sweep, which every
`lease_sweep_s` puts tasks whose holder stopped renewing back in the queue (a claim
that finds nothing also sweeps, so this bounds how long an expired task sits unseen).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from sqlalchemy.engine import Connection

from flotilla.bus.hooks import event_publisher, payload_envelope, worker_state_publisher
from flotilla.bus.inprocess import InProcessTransport
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
from flotilla.server.routes_coordination import coordination_router
from flotilla.server.routes_messages import message_router
from flotilla.server.routes_tasks import task_router
from flotilla.store.bus_sql import append_in, bus_store
from flotilla.store.sql import SqlStore

log = logging.getLogger(__name__)

LEASE_SWEEP_S = 2.0
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


def store_in_tx(conn: Connection, task: Task, kind: EventKind) -> None:
    """TaskStore's `event_in_tx`: the move's `task.<kind>` event, in the move's transaction."""
    append_in(conn, payload_envelope(f"{TASK_EVENT_PREFIX}{kind.value}", task.to_dict()))


@dataclass
class CoordinationSide:
    bus: InProcessTransport
    messages: MessageService
    delivery: DeliveryLoop
    teams: Coordination
    checkpoints: Checkpoints
    tasks: TaskService
    lease_sweep_s: float = LEASE_SWEEP_S
    sweeps: int = field(default=0, init=False)  # lease sweeps begun (tests wait on it)

    @classmethod
    async def start(
        cls, service: FleetService, *, lease_sweep_s: float = LEASE_SWEEP_S
    ) -> CoordinationSide:
        store = service.store
        bus = InProcessTransport(bus_store(store))  # the store's event log, fanned out
        await bus.start()
        if isinstance(store, SqlStore):
            store.on_state_change = worker_state_publisher(bus)  # worker.state events
        publish = event_publisher(bus)
        teams = Coordination(service, on_event=publish)

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
        return cls(bus, messages, delivery, teams, checkpoints, tasks, lease_sweep_s)

    def routers(self, service: FleetService) -> list[APIRouter]:
        return [
            message_router(self.messages),
            coordination_router(service, self.teams, self.checkpoints),
            task_router(self.tasks),
        ]

    def worker_ended(self, worker: Worker) -> None:
        self.delivery.worker_ended(worker)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver messages and sweep expired leases until `stop` is set."""
        await asyncio.gather(self.delivery.run(stop), self.sweep_leases(stop))

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

    async def close(self) -> None:
        await self.bus.close()
