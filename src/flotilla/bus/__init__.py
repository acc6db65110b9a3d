"""The bus: envelopes, the event log's transports, filters, and message kinds and states.

    bus = InProcessTransport(bus_store(store))      # the store's event log, fanned out
    await bus.start()
    bus.publish(Envelope.new("worker.state", "flotilla", {...}, subject=worker.id))
    async for event in bus.subscribe(EventFilter.of(kinds="worker"), since=cursor): ...

Everything here is transport-neutral; a NATS JetStream transport implements the same
Transport protocol over the same log.
"""

from __future__ import annotations

from flotilla.bus.envelope import Envelope, Event, new_id, sign, verify
from flotilla.bus.filters import EventFilter
from flotilla.bus.inprocess import InProcessSubscription, InProcessTransport
from flotilla.bus.message import Message, MessageKind, MessageState
from flotilla.bus.transport import EventLog, Subscription, Transport

__all__ = [
    "Envelope",
    "Event",
    "EventFilter",
    "EventLog",
    "InProcessSubscription",
    "InProcessTransport",
    "Message",
    "MessageKind",
    "MessageState",
    "Subscription",
    "Transport",
    "new_id",
    "sign",
    "verify",
]
