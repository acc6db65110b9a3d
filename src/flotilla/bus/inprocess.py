"""The in-process transport: the store's event log fanned out to asyncio subscribers.

One dispatcher task reads new events from the log in seq order (woken by `publish`
or `notify`, and every `poll_s` for events other processes appended) and offers each
to every live subscription whose filter matches. Each subscription has a bounded
queue; when it is full the subscription is marked behind and the dispatcher stops
feeding it, so a slow subscriber never holds up the others. A subscription that is
behind (it overflowed, or it started from an old cursor) reads the log itself from
the last seq it accounted for, then rejoins the live feed: it misses nothing and
gets nothing twice. Subscriptions belong to the transport's event loop.

The log is pruned (store/bus_retention.py) from its oldest event up. A subscription
whose cursor is older than what the log still holds cannot get everything: it notes
`pruned_before` (the oldest seq kept), for its stream to announce, and goes on from there.
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
        self._fresh: list[Event] = []  # committed events handed over by `notify`
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

    def notify(self, events: Sequence[Event] = ()) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started (or gone): the events wait in the log for a cursor
        if threading.get_ident() == self._loop_thread:
            self._wake_with(events)
            return
        try:
            loop.call_soon_threadsafe(self._wake_with, events)
        except RuntimeError:
            counters.count("bus.notify_after_close")  # the loop closed meanwhile

    def _wake_with(self, events: Sequence[Event]) -> None:
        """On the loop: wake the dispatcher, with the stored events if the caller has them
        (they need not be read back from the log)."""
        self._fresh.extend(events)
        self._wake.set()

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
            events = self._take_fresh()
            if events is None:
                try:
                    events = await asyncio.to_thread(self.log.read, self.head, limit=self.page)
                except Exception:
                    counters.count("bus.dispatch_read_failed")
                    log.exception("reading the event log failed")
                    events = []
            if events:
                if events[0].seq > self.head + 1:  # pruned before it was fanned out
                    counters.count("bus.dispatch_gap")
                    for sub in list(self._subs):
                        sub._pruned(events[0].seq)
                self._fan_out(events)
                if len(events) == self.page:
                    continue  # more are waiting
            waiter = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({waiter}, timeout=self.poll_s)
            waiter.cancel()

    def _take_fresh(self) -> list[Event] | None:
        """The events handed over by `notify` that follow the head without a gap, or None
        when the log must be read (nothing handed over, or a seq missing: committed by
        someone who has not said so yet, or by another process)."""
        fresh = sorted((e for e in self._fresh if e.seq > self.head), key=lambda e: e.seq)
        self._fresh.clear()
        run: list[Event] = []
        for event in fresh:
            if event.seq != self.head + len(run) + 1:
                break
            run.append(event)
            if len(run) == self.page:
                break
        self._fresh.extend(fresh[len(run) :])
        return run or None

    def _fan_out(self, events: Sequence[Event]) -> None:
        # Each distinct filter is matched once (200 subscribers of one kind: one match per
        # event, not 200).
        matching: dict[EventFilter, Sequence[Event]] = {}
        for sub in list(self._subs):
            wanted = matching.get(sub.filter)
            if wanted is None:
                wanted = events if sub.filter.everything else sub.filter.select(events)
                matching[sub.filter] = wanted
            sub._offer(wanted, events[-1].seq)
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
        # None, or the oldest seq the log still held when this subscription found events
        # after its cursor pruned: the ones it wanted with seq below this are gone.
        self.pruned_before: int | None = None
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

    def take_ready(self, limit: int) -> list[Event]:
        """Up to `limit` events already waiting, without waiting for more: a stream that
        sends several events per frame takes them with the one it awaited."""
        if len(self._items) <= limit:
            taken = list(self._items)
            self._items.clear()
        else:
            taken = [self._items.popleft() for _ in range(limit)]
        if taken:
            self.cursor = taken[-1].seq
        return taken

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

    def _offer(self, wanted: Sequence[Event], last: int) -> None:
        """Called by the dispatcher, on the event loop: the events up to seq `last` that
        match this subscription's filter, in seq order."""
        if self._behind or self._closed:
            return
        all_new = not wanted or wanted[0].seq > self._scanned
        if all_new and len(self._items) + len(wanted) <= self.transport.queue_size:
            self._items.extend(wanted)  # the usual case, in one step
            self._scanned = max(self._scanned, last)
            if wanted:
                self._ready.set()
            return
        added = False
        for event in wanted:
            if event.seq <= self._scanned:
                continue
            if len(self._items) >= self.transport.queue_size:
                self._behind = True  # resume from the cursor: read the log instead
                self.overflows += 1
                counters.count("bus.subscriber_overflow")
                break
            self._items.append(event)
            added = True
            self._scanned = event.seq
        if not self._behind:
            self._scanned = max(self._scanned, last)
        if added or self._behind:
            self._ready.set()

    def _pruned(self, oldest: int) -> None:
        """Events after what this subscription accounted for, below `oldest`, are gone."""
        if self._scanned + 1 >= oldest or (self.pruned_before or 0) >= oldest:
            return
        self.pruned_before = oldest
        counters.count("bus.cursor_pruned")

    def _read_page(self, after: int, until: int) -> tuple[list[Event], int | None]:
        """A page of the log after `after`, and the oldest seq kept unless the page starts
        right after `after` (then nothing was skipped). Read second, so a prune racing the
        read is seen: at worst a loss is announced that the read escaped."""
        log = self.transport.log
        events = log.read(after, event_filter=self.filter, until=until, limit=self.transport.page)
        if events and events[0].seq == after + 1:
            return events, None
        return events, log.oldest()

    async def _catch_up(self) -> None:
        target = self.transport.head
        page = self.transport.page
        events, oldest = await asyncio.to_thread(self._read_page, self._scanned, target)
        if oldest is not None:
            self._pruned(oldest)
        self._items.extend(events)
        self._scanned = events[-1].seq if len(events) == page else max(self._scanned, target)
        if self._scanned >= self.transport.head:
            self._behind = False  # caught up: the dispatcher feeds it from here on
