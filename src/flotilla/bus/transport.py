"""The bus interface: one Protocol every transport implements (in-process now, NATS
JetStream next), and the event log the transports are built on.

The store's event log is the truth: `publish` appends the envelope there first, so an
event's cursor (`seq`) means the same whichever transport carries it and survives a
restart. A transport's job is fan-out: bringing each new event, in order, to every
subscriber whose filter it matches, and letting a subscriber that reconnects (or fell
behind) resume after the last cursor it saw, missing nothing and getting nothing twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from flotilla.bus.envelope import Envelope, Event
from flotilla.bus.filters import EventFilter


class EventLog(Protocol):
    """Durable, totally ordered storage of events (store/bus_sql.py on SQLite/PostgreSQL)."""

    def append(self, envelope: Envelope) -> Event:
        """Store the envelope under the next seq; an id stored already returns that event."""
        ...

    def read(
        self,
        after: int,
        *,
        event_filter: EventFilter | None = None,
        until: int | None = None,
        limit: int = 500,
    ) -> list[Event]:
        """Events with after < seq (<= until), matching the filter, in seq order."""
        ...

    def head(self) -> int:
        """The highest seq stored (0 for an empty log)."""
        ...

    def oldest(self) -> int:
        """The lowest seq kept (older ones were pruned); for an empty log, the next seq.
        A cursor `c` with c + 1 < oldest() missed the events from c + 1 up to it."""
        ...


class Subscription(Protocol):
    """An async iterator of events; `cursor` is the seq of the last one it yielded."""

    cursor: int
    filter: EventFilter
    # The oldest seq the log still held when this subscription found events after its
    # cursor pruned (None: nothing missed): the ones it wanted below it are gone.
    pruned_before: int | None

    def __aiter__(self) -> AsyncIterator[Event]: ...
    async def __anext__(self) -> Event: ...
    def take_ready(self, limit: int) -> list[Event]:
        """Up to `limit` events that are already waiting (none: an empty list)."""
        ...

    async def close(self) -> None: ...


class Transport(Protocol):
    def publish(self, envelope: Envelope) -> Event:
        """Append to the log and fan out. Synchronous and durable on return; callable from
        any thread, the event loop's included (it is one short store transaction)."""
        ...

    def notify(self, events: Sequence[Event] = ()) -> None:
        """Events were appended to the log by someone else: fan them out soon. `events`:
        the committed events themselves, if the caller has them (saves reading them)."""
        ...

    def subscribe(self, event_filter: EventFilter, since: int | None = None) -> Subscription:
        """Events after cursor `since` (None: only events published from now on)."""
        ...

    async def close(self) -> None: ...
