"""Learn of agents' exits the moment they happen, so a turn ends without waiting for
the supervisor's next periodic pass (a pidfd per agent, watched by the event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flotilla.runtime.pidfd import exit_waiter
from flotilla.runtime.process import ProcessIdentity


class ExitWatches:
    """The agents being watched, and those that exited since `take_exited` was last called.

    Loop-thread only. Where pidfds are missing nothing is watched, and the periodic
    pass notices exits as before.
    """

    def __init__(self, on_exit: Callable[[], None]) -> None:
        self._on_exit = on_exit
        self._watches: dict[str, asyncio.Future[None]] = {}
        self._exited: set[str] = set()

    def watch(self, worker_id: str, identity: ProcessIdentity) -> None:
        if worker_id in self._watches:
            return
        waiter = exit_waiter(identity)
        if waiter is None:
            return

        def exited(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                self._exited.add(worker_id)
                self._on_exit()

        waiter.add_done_callback(exited)
        self._watches[worker_id] = waiter

    def forget(self, worker_id: str) -> None:
        watch = self._watches.pop(worker_id, None)
        if watch is not None:
            watch.cancel()

    def take_exited(self) -> set[str]:
        exited, self._exited = self._exited, set()
        return exited

    def close(self) -> None:
        for watch in self._watches.values():
            watch.cancel()
        self._watches.clear()
