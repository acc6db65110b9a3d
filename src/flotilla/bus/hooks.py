"""Callbacks that turn changes made elsewhere into bus events.

- `worker_state_publisher(bus)`: for the store, called after a worker's state change has
  committed (`worker.state`, about the worker's id).
- `event_publisher(bus)`: for services that report `(kind, payload)` (tasks, teams,
  swarms, the blackboard): the subject and team are taken from the payload.

A change is already stored when its hook runs; publishing must never undo or fail it, so
a failure to publish is counted and logged, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flotilla import counters
from flotilla.bus.envelope import Envelope
from flotilla.bus.transport import Transport
from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker

log = logging.getLogger(__name__)

WORKER_STATE = "worker.state"
SENDER = "flotilla"
_SUBJECT_KEYS = ("id", "task_id", "message_id", "worker_id", "name")


def worker_state_envelope(worker: Worker, previous: WorkerState | None) -> Envelope:
    team = worker.settings.get("team")
    return Envelope.new(
        WORKER_STATE,
        SENDER,
        {
            "worker_id": worker.id,
            "name": worker.name,
            "project": worker.project,
            "agent": worker.agent,
            "batch": worker.batch,
            "from": None if previous is None else previous.value,
            "to": worker.state.value,
            "outcome": None if worker.outcome is None else worker.outcome.value,
            "error": worker.error,
            "attempt": worker.attempt,
        },
        subject=worker.id,
        team=team if isinstance(team, str) else None,
    )


def worker_state_publisher(bus: Transport) -> Callable[[Worker, WorkerState | None], None]:
    """The hook for the store: `hook(worker_as_stored_now, previous_state_or_None)`."""

    def publish(worker: Worker, previous: WorkerState | None) -> None:
        try:
            bus.publish(worker_state_envelope(worker, previous))
        except Exception:
            counters.count("bus.worker_event_failed")
            log.exception("publishing the state change of %s failed", worker.name)

    return publish


def payload_envelope(kind: str, payload: Mapping[str, Any], sender: str = SENDER) -> Envelope:
    """An event of `kind` about the first id-like field of the payload, in its team."""
    subject = next(
        (str(payload[k]) for k in _SUBJECT_KEYS if isinstance(payload.get(k), str | int)), None
    )
    team = payload.get("team")
    return Envelope.new(
        kind,
        sender,
        dict(payload),
        subject=None if subject is None else subject[:128],
        team=team if isinstance(team, str) else None,
    )


def event_publisher(bus: Transport, sender: str = SENDER) -> Callable[[str, dict[str, Any]], None]:
    """An `on_event(kind, payload)` callback that publishes on the bus."""

    def publish(kind: str, payload: dict[str, Any]) -> None:
        try:
            bus.publish(payload_envelope(kind, payload, sender))
        except Exception:
            counters.count("bus.service_event_failed")
            log.exception("publishing %s failed", kind)

    return publish
