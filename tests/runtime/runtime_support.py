"""Helpers shared by the runtime tests (imported by basename: tests/runtime is on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psutil

from flotilla.runtime.tailer import read_exit


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


def wait_exit(attempt: Path, timeout: float = 10.0) -> int:
    """The exit status the shim wrote in `attempt`, waiting for it to appear."""
    wait_until(lambda: read_exit(attempt) is not None, timeout)
    code = read_exit(attempt)
    assert code is not None
    return code


def started_agent(shim_pid: int, name: str, timeout: float = 10.0) -> psutil.Process:
    """The shim's child once it has exec'd `name` (before that, a signal can be lost)."""
    found: list[psutil.Process] = []

    def ready() -> bool:
        found[:] = [c for c in psutil.Process(shim_pid).children() if c.name() == name]
        return bool(found)

    wait_until(ready, timeout)
    return found[0]


def gone(proc: psutil.Process | int) -> bool:
    """True once the process has exited (a zombie counts as exited)."""
    try:
        target = psutil.Process(proc) if isinstance(proc, int) else proc
        return not target.is_running() or target.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
