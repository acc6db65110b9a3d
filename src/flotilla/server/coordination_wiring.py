"""The daemon's coordination side: the bus, messages and their delivery, teams, swarms,
the blackboard and checkpoints, made once over one store and wired to each other.

Every coordination object reports its changes as events on the bus, so one stream
(GET /events, and the WebSocket built on it) shows workers, messages and teams alike.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import APIRouter

from flotilla.bus.hooks import event_publisher, worker_state_publisher
from flotilla.bus.inprocess import InProcessTransport
from flotilla.counters import count
from flotilla.domain.errors import NotFound
from flotilla.domain.worker import Worker
from flotilla.orchestrator.checkpoints import Checkpoints
from flotilla.orchestrator.coordination import Coordination
from flotilla.orchestrator.delivery_loop import DeliveryLoop
from flotilla.orchestrator.messaging import MessageService, team_of
from flotilla.orchestrator.service import FleetService
from flotilla.server.routes_coordination import coordination_router
from flotilla.server.routes_messages import message_router
from flotilla.store.bus_sql import bus_store
from flotilla.store.sql import SqlStore


@dataclass
class CoordinationSide:
    bus: InProcessTransport
    messages: MessageService
    delivery: DeliveryLoop
    teams: Coordination
    checkpoints: Checkpoints

    @classmethod
    async def start(cls, service: FleetService) -> CoordinationSide:
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
        return cls(bus, messages, delivery, teams, Checkpoints(service, on_event=publish))

    def routers(self, service: FleetService) -> list[APIRouter]:
        return [
            message_router(self.messages),
            coordination_router(service, self.teams, self.checkpoints),
        ]

    def worker_ended(self, worker: Worker) -> None:
        self.delivery.worker_ended(worker)

    async def run(self, stop: asyncio.Event) -> None:
        await self.delivery.run(stop)

    async def close(self) -> None:
        await self.bus.close()
