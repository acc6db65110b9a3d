"""Finding an agent a killed daemon started but never recorded: real shims, real processes."""

from __future__ import annotations

import time
from pathlib import Path

from flotilla.executors.base import Command
from flotilla.orchestrator.adoption import Start, find_shim, unrecorded_start
from flotilla.runtime.launcher import launch_detached
from flotilla.runtime.process import ProcessIdentity, kill_tree


def test_a_running_shim_is_found_by_its_attempt_folder(tmp_path: Path) -> None:
    folder = tmp_path / "attempt-1"
    other = tmp_path / "attempt-2"
    identity = launch_detached(Command(argv=["sleep", "30"]), folder, {"PATH": "/usr/bin:/bin"})
    try:
        found = unrecorded_start(folder)
        assert isinstance(found, ProcessIdentity)
        assert found.pid == identity.pid
        assert abs(found.started_at - identity.started_at) < 2
        assert find_shim(other) is None
        assert unrecorded_start(other) is Start.NEVER  # no trace: it never started
    finally:
        kill_tree(identity)


def test_a_shim_that_ran_and_ended_is_reported_ended(tmp_path: Path) -> None:
    folder = tmp_path / "attempt-1"
    launch_detached(Command(argv=["true"]), folder, {"PATH": "/usr/bin:/bin"})
    deadline = time.monotonic() + 10
    while not (folder / "exit").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert unrecorded_start(folder) is Start.ENDED
