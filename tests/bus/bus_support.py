"""Helpers of the bus tests: worker rows in a chosen state (no agent process behind them)
and a MessageService over the real store, the real FleetService and the in-process bus."""

from __future__ import annotations

import secrets
from pathlib import Path

from flotilla.bus.inprocess import InProcessTransport
from flotilla.domain.states import Outcome, WorkerState
from flotilla.domain.worker import Worker
from flotilla.orchestrator.messaging import MessageService
from flotilla.orchestrator.service import FleetService
from flotilla.store import SqlStore
from flotilla.store.bus_sql import bus_store

PROJECT = "/repo"
W = WorkerState
PATHS = {
    W.QUEUED: [],
    W.STARTING: [W.STARTING],
    W.RUNNING: [W.STARTING, W.RUNNING],
    W.WAITING: [W.STARTING, W.RUNNING, W.WAITING],
    W.SUCCEEDED: [W.STARTING, W.RUNNING, W.SUCCEEDED],
    W.FAILED: [W.STARTING, W.RUNNING, W.FAILED],
    W.CANCELLED: [W.CANCELLED],
}


def add_worker(
    store: SqlStore,
    name: str,
    state: WorkerState = W.RUNNING,
    *,
    interactive: bool = False,
    batch: str | None = None,
    team: str | None = None,
) -> Worker:
    worker = store.create_worker(
        Worker(
            id=f"w-{secrets.token_hex(6)}",
            name=name,
            project=PROJECT,
            agent="scripted",
            prompt="start",
            worktree=f"/nonexistent/{name}",
            interactive=interactive,
            batch=batch,
            settings={"team": team} if team else {},
        )
    )
    for step in PATHS[state]:
        fields: dict[str, object] = {"state": step}
        if step is W.SUCCEEDED:
            fields["outcome"] = Outcome.SUCCESS
        worker = store.update_worker(worker.id, **fields)  # type: ignore[arg-type]
    return worker


def message_service(store: SqlStore, home: Path, **options: object) -> MessageService:
    fleet = FleetService(store, home, tmux_socket=f"flotilla-bus-{secrets.token_hex(4)}")
    bus = InProcessTransport(bus_store(store))  # not started: publishing only appends
    return MessageService(store, fleet, bus, **options)  # type: ignore[arg-type]


def kinds(store: SqlStore, subject: str | None = None) -> list[str]:
    events = bus_store(store).read(0, limit=10_000)
    return [e.kind for e in events if subject is None or e.envelope.subject == subject]


def supervisor_takes_prompts(store: SqlStore, worker: Worker) -> int:
    """What the supervisor does when it starts a follow-up turn: take the next prompt."""
    taken = 0
    while store.take_next_prompt(worker.id) is not None:
        taken += 1
    return taken
