"""The daemon's delivery loop: hands pending messages over and confirms queued ones.

One asyncio task. A pass runs when something may have changed for a waiting message —
a worker's turn ended (`worker_ended`, chained onto the supervisor's hook), a worker's
state changed (a `worker.state` event on the bus), or `wake()` — and at the latest
every `interval_s`, which also catches deliverers that died holding a message. Passes
run in a thread: delivery does store and tmux I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from flotilla import counters
from flotilla.bus.filters import EventFilter
from flotilla.bus.transport import Transport
from flotilla.domain.errors import FlotillaError
from flotilla.orchestrator.messaging import MessageService

log = logging.getLogger(__name__)

INTERVAL_S = 2.0


class DeliveryLoop:
    def __init__(
        self,
        messages: MessageService,
        *,
        interval_s: float = INTERVAL_S,
        bus: Transport | None = None,
    ) -> None:
        self.messages = messages
        self.interval_s = interval_s
        self.bus = bus  # when given, worker.state events wake the loop
        self.passes = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Run a pass soon; callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:
            counters.count("delivery.wake_after_close")

    def worker_ended(self, _worker: Any) -> None:
        """For Supervisor.on_worker_end: a finished turn may strand or free a message."""
        self.wake()

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(self._watch_workers()) if self.bus is not None else None
        try:
            while not stop.is_set():
                self._wake.clear()
                await self._pass()
                woken = asyncio.ensure_future(self._wake.wait())
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {woken, stopped}, timeout=self.interval_s, return_when=asyncio.FIRST_COMPLETED
                )
                woken.cancel()
                stopped.cancel()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _pass(self) -> None:
        self.passes += 1
        try:
            await asyncio.to_thread(self.messages.deliver_pending)
        except Exception:
            counters.count("delivery.pass_failed")
            log.exception("a message delivery pass failed")

    async def _watch_workers(self) -> None:
        assert self.bus is not None
        try:
            subscription = self.bus.subscribe(EventFilter.of(kinds="worker.state"))
        except FlotillaError:
            counters.count("delivery.watch_unavailable")  # the periodic pass still runs
            log.exception("cannot follow worker events")
            return
        try:
            async for _event in subscription:
                self._wake.set()
        finally:
            await subscription.close()


def chain(*callbacks: Callable[[Any], None]) -> Callable[[Any], None]:
    """One hook calling several (Supervisor.on_worker_end takes one); each one's failure is
    counted and does not stop the others."""

    def call_all(arg: Any) -> None:
        for callback in callbacks:
            try:
                callback(arg)
            except Exception:
                counters.count("delivery.chained_hook_failed")
                log.exception("hook %r failed", callback)

    return call_all
