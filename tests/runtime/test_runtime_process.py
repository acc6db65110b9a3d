"""is_alive, tree_usage and kill_tree against real process trees."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
from runtime_support import gone, started_agent, wait_exit, wait_until

from flotilla.executors.base import Command
from flotilla.runtime.launcher import launch_detached
from flotilla.runtime.process import (
    ProcessIdentity,
    TreeUsage,
    identify,
    is_alive,
    kill_tree,
    tree_usage,
)


def tree_pids(identity: ProcessIdentity) -> list[int]:
    root = psutil.Process(identity.pid)
    return [root.pid, *(p.pid for p in root.children(recursive=True))]


def test_is_alive_follows_the_process(tmp_path: Path, base_env: dict[str, str]) -> None:
    identity = launch_detached(Command(argv=["sleep", "30"]), tmp_path, base_env)
    assert is_alive(identity)
    assert identify(identity.pid) == identity
    os.killpg(identity.pid, signal.SIGKILL)
    wait_until(lambda: not is_alive(identity))
    assert identify(identity.pid) is None


def test_a_mismatched_start_time_is_a_stranger(tmp_path: Path, base_env: dict[str, str]) -> None:
    identity = launch_detached(Command(argv=["sleep", "30"]), tmp_path, base_env)
    stranger = ProcessIdentity(identity.pid, identity.started_at - 60.0)
    try:
        assert not is_alive(stranger)
        assert tree_usage(stranger) == TreeUsage(0.0, 0, 0)
        assert not kill_tree(stranger, grace_s=0.5)
        assert is_alive(identity), "kill_tree hit a process whose start time did not match"
    finally:
        kill_tree(identity, grace_s=2.0)


def test_kill_tree_kills_grandchildren(tmp_path: Path, base_env: dict[str, str]) -> None:
    # A child in the group, one that left the group for its own session, and the sh.
    script = "sleep 60 & setsid sleep 61 & wait"
    identity = launch_detached(Command(argv=["sh", "-c", script]), tmp_path, base_env)
    wait_until(lambda: len(tree_pids(identity)) == 4)
    pids = tree_pids(identity)
    assert kill_tree(identity, grace_s=3.0)
    wait_until(lambda: all(gone(pid) for pid in pids), timeout=5.0)
    assert wait_exit(tmp_path) == 143
    assert not kill_tree(identity, grace_s=0.5), "a dead identity must be a no-op"


def test_kill_tree_escalates_to_sigkill(tmp_path: Path, base_env: dict[str, str]) -> None:
    ready = tmp_path / "ready"
    stubborn = f"trap '' TERM; touch '{ready}'; while :; do sleep 0.05; done"
    identity = launch_detached(Command(argv=["sh", "-c", stubborn]), tmp_path / "a", base_env)
    wait_until(ready.exists)
    started = time.monotonic()
    assert kill_tree(identity, grace_s=0.5)
    assert time.monotonic() - started < 5.0
    assert wait_exit(tmp_path / "a") == 137
    wait_until(lambda: not is_alive(identity))


def test_kill_tree_finds_orphans_of_a_dead_shim(tmp_path: Path, base_env: dict[str, str]) -> None:
    identity = launch_detached(Command(argv=["sleep", "60"]), tmp_path, base_env)
    agent = started_agent(identity.pid, "sleep")
    os.kill(identity.pid, signal.SIGKILL)  # the shim only: the agent lives on, orphaned
    wait_until(lambda: not is_alive(identity))
    assert not gone(agent)
    assert kill_tree(identity, grace_s=3.0)
    wait_until(lambda: gone(agent), timeout=5.0)


def test_tree_usage_sums_the_tree(tmp_path: Path, base_env: dict[str, str]) -> None:
    busy = "sleep 30 & while :; do :; done"
    identity = launch_detached(Command(argv=["sh", "-c", busy]), tmp_path, base_env)
    try:
        wait_until(lambda: len(tree_pids(identity)) == 3)
        first = tree_usage(identity)
        assert first.num_processes == 3
        assert first.rss_bytes > 0
        time.sleep(0.5)
        second = tree_usage(identity)
        assert second.num_processes == 3
        assert second.rss_bytes > 0
        assert second.cpu_percent > 20.0, second
    finally:
        kill_tree(identity, grace_s=2.0)
    wait_until(lambda: not is_alive(identity))
    assert tree_usage(identity) == TreeUsage(0.0, 0, 0)
