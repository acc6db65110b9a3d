"""exit_waiter: the asyncio loop learns of an exit without polling."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from runtime_support import wait_exit

from flotilla.executors.base import Command
from flotilla.runtime.launcher import launch_detached
from flotilla.runtime.pidfd import exit_waiter
from flotilla.runtime.process import ProcessIdentity, kill_tree

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfd on this OS")


async def test_waiter_completes_when_the_process_exits(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    go = tmp_path / "go"
    script = f"while [ ! -e '{go}' ]; do sleep 0.02; done"
    identity = launch_detached(Command(argv=["sh", "-c", script]), tmp_path / "a", base_env)
    waiter = exit_waiter(identity)
    assert waiter is not None
    await asyncio.sleep(0.2)
    assert not waiter.done()
    go.touch()
    await asyncio.wait_for(waiter, timeout=10)
    assert wait_exit(tmp_path / "a") == 0


async def test_waiter_of_a_gone_or_foreign_process_is_done(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    identity = launch_detached(Command(argv=["sleep", "30"]), tmp_path, base_env)
    try:
        foreign = exit_waiter(ProcessIdentity(identity.pid, identity.started_at + 100))
        assert foreign is not None and foreign.done()
        live = exit_waiter(identity)
        assert live is not None and not live.done()
        live.cancel()  # stops the watch and closes the pidfd
        await asyncio.sleep(0)
    finally:
        kill_tree(identity, grace_s=2.0)
    gone = exit_waiter(ProcessIdentity(2**22 + 1, 0.0))
    assert gone is not None and gone.done()
