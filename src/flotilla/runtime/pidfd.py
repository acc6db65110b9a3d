"""Learn that a process exited without polling: a Linux pidfd watched by the asyncio loop.

Works for processes that are not our children (agents re-adopted after a restart).
Where pidfds or `loop.add_reader` are missing, `exit_waiter` returns None and the
caller falls back to polling `is_alive`.
"""

from __future__ import annotations

import asyncio
import os

from flotilla.counters import count
from flotilla.runtime.process import ProcessIdentity, is_alive


def _done(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()
    future.set_result(None)
    return future


def exit_waiter(identity: ProcessIdentity) -> asyncio.Future[None] | None:
    """A future of the running loop that completes when the process exits.

    Already done if the process is gone. Cancelling it stops the watch. None where
    the platform cannot watch a process this way.
    """
    loop = asyncio.get_running_loop()
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(identity.pid)
    except ProcessLookupError:
        count("runtime.pidfd_gone")
        return _done(loop)
    except OSError:
        count("runtime.pidfd_unsupported")
        return None
    # The pidfd pins the PID, so from here it cannot be reused: check it is ours.
    if not is_alive(identity):
        os.close(fd)
        return _done(loop)
    future: asyncio.Future[None] = loop.create_future()

    def exited() -> None:
        if not future.done():
            future.set_result(None)

    try:
        loop.add_reader(fd, exited)
    except NotImplementedError:
        count("runtime.pidfd_no_reader")
        os.close(fd)
        return None

    def stop(_: asyncio.Future[None]) -> None:
        loop.remove_reader(fd)
        os.close(fd)

    future.add_done_callback(stop)
    return future
