"""The in-process transport: the store's event log fanned out to asyncio subscribers.

One dispatcher task reads new events from the log in seq order (woken by `publish`
or `notify`, and every `poll_s` for events other processes appended) and offers each
to every live subscription whose filter matches. Each subscription has a bounded
queue; when it is full the subscription is marked behind and the dispatcher stops
feeding it, so a slow subscriber never holds up the others. A subscription that is
behind (it overflowed, or it started from an old cursor) reads the log itself from
the last seq it accounted for, then rejoins the live feed: it misses nothing and
gets nothing twice. Subscriptions belong to the transport's event loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import AsyncIterator, Sequence

from flotilla import counters
from flotilla.bus.envelope import Envelope, Event
from flotilla.bus.filters import EventFilter
from flotilla.bus.transport import EventLog
from flotilla.domain.errors import OperationFailed, UsageError

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
PAGE = 500


class InProcessTransport:
    def __init__(
        self,
        event_log: EventLog,
        *,
        queue_size: int = QUEUE_SIZE,
        page: int = PAGE,
        poll_s: float = 1.0,
    ) -> None:
        if queue_size < 1 or page < 1:
            raise UsageError("queue_size and page must be at least 1")
        self.log = event_log
        self.queue_size = queue_size
        self.page = page
        self.poll_s = poll_s
        self.head = 0  # the last seq fanned out
        self._subs: set[InProcessSubscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Begin fanning out from the log's current head (published before: only by cursor)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.head = await asyncio.to_thread(self.log.head)
        self._task = asyncio.create_task(self._run(), name="bus-dispatch")

    async def __aenter__(self) -> InProcessTransport:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- publishing ---------------------------------------------------------------

    def publish(self, envelope: Envelope) -> Event:
        event = self.log.append(envelope)
        self.notify()
        return event

    def notify(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started (or gone): the events wait in the log for a cursor
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
            return
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:
            counters.count("bus.notify_after_close")  # the loop closed meanwhile

    # -- subscribing -----------------------------------------------------------------

    def subscribe(
        self, event_filter: EventFilter, since: int | None = None
    ) -> InProcessSubscription:
        if self._task is None or self._closed:
            raise OperationFailed("the bus is not running: start it before subscribing")
        if since is not None and since < 0:
            raise UsageError(f"the cursor {since} is negative: give 0 for the whole log")
        start = self.head if since is None else since
        sub = InProcessSubscription(self, event_filter, start, behind=start < self.head)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def _drop(self, sub: InProcessSubscription) -> None:
        self._subs.discard(sub)

    # -- the dispatcher -----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            self._wake.clear()  # before reading: a publish during the read wakes us again
            try:
                events = await asyncio.to_thread(self.log.read, self.head, limit=self.page)
            except Exception:
                counters.count("bus.dispatch_read_failed")
                log.exception("reading the event log failed")
                events = []
            if events:
                self._fan_out(events)
                if len(events) == self.page:
                    continue  # more are waiting
            waiter = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({waiter}, timeout=self.poll_s)
            waiter.cancel()

    def _fan_out(self, events: Sequence[Event]) -> None:
        for sub in list(self._subs):
            sub._offer(events)
        self.head = events[-1].seq

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        for sub in list(self._subs):
            sub._end()
        self._subs.clear()


class InProcessSubscription:
    """Events in seq order; `cursor` is the seq of the last one yielded (resume after it)."""

    def __init__(
        self, transport: InProcessTransport, event_filter: EventFilter, start: int, *, behind: bool
    ) -> None:
        self.transport = transport
        self.filter = event_filter
        self.cursor = start
        self.overflows = 0  # how often the queue filled and the log had to be read instead
        self._scanned = start  # every event up to here is queued, yielded or not wanted
        self._behind = behind
        self._items: collections.deque[Event] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._items:
                event = self._items.popleft()
                self.cursor = event.seq
                return event
            if self._closed:
                raise StopAsyncIteration
            if self._behind:
                await self._catch_up()
                continue
            self._ready.clear()
            await self._ready.wait()

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None if none came within `timeout` seconds."""
        step = asyncio.ensure_future(self.__anext__())
        done, _ = await asyncio.wait({step}, timeout=timeout)
        if not done:
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
            return None
        return step.result()

    async def close(self) -> None:
        self.transport._drop(self)
        self._end()

    def _end(self) -> None:
        self._closed = True
        self._ready.set()

    @property
    def behind(self) -> bool:
        return self._behind

    def _offer(self, events: Sequence[Event]) -> None:
        """Called by the dispatcher, in seq order, on the event loop."""
        if self._behind or self._closed:
            return
        everything = self.filter.everything
        added = False
        for event in events:
            if event.seq <= self._scanned:
                continue
            if everything or self.filter.matches(event.envelope):
                if len(self._items) >= self.transport.queue_size:
                    self._behind = True  # resume from the cursor: read the log instead
                    self.overflows += 1
                    counters.count("bus.subscriber_overflow")
                    break
                self._items.append(event)
                added = True
            self._scanned = event.seq
        if added or self._behind:
            self._ready.set()

    async def _catch_up(self) -> None:
        target = self.transport.head
        page = self.transport.page
        events = await asyncio.to_thread(
            self.transport.log.read,
            self._scanned,
            event_filter=self.filter,
            until=target,
            limit=page,
        )
        self._items.extend(events)
        self._scanned = events[-1].seq if len(events) == page else max(self._scanned, target)
        if self._scanned >= self.transport.head:
            self._behind = False  # caught up: the dispatcher feeds it from here on
