"""Helpers for the interactive end-to-end tests: the worker's tmux session, seen from outside."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from e2e_support import Fleet

from flotilla.server.client import DaemonClient


def configure(fleet: Fleet, text: str) -> None:
    (fleet.repo / ".flotilla").mkdir(exist_ok=True)
    (fleet.repo / ".flotilla" / "config.toml").write_text(text)


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are a subset TOML accepts)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def scripted_interactive(fleet: Fleet, script: str, extra: str = "") -> None:
    """The scripted agent as the project's default, following `script`."""
    path = fleet.script("agent", script)
    configure(
        fleet,
        f'[project]\ndefault_agent = "scripted"\n{extra}\n'
        f"[agents.scripted]\nscript = {toml_string(str(path))}\n",
    )


def socket(fleet: Fleet) -> str:
    return fleet.env["FLOTILLA_TMUX_SOCKET"]


def tmux(fleet: Fleet, *args: str, env: dict[str, str] | None = None) -> str:
    """Run tmux on the fleet's socket; stdout, or the error text of a failed command."""
    done = subprocess.run(
        ["tmux", "-L", socket(fleet), *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        env=env,
    )
    return done.stdout if done.returncode == 0 else f"[exit {done.returncode}] {done.stderr}"


def sessions(fleet: Fleet) -> list[str]:
    """Session names on the fleet's tmux socket (none when no server runs)."""
    out = tmux(fleet, "list-sessions", "-F", "#{session_name}")
    return [] if out.startswith("[exit") else out.split()


def details(fleet: Fleet, name: str) -> dict[str, Any]:
    """GET /workers/NAME: the worker with its `tmux_session` (the CLI has no such command)."""
    project = fleet.workers()[name]["project"]
    client = DaemonClient(fleet.env)
    try:
        worker: dict[str, Any] = client.call("GET", f"/workers/{name}", params={"project": project})
    finally:
        client.close()
    return worker


def pane(fleet: Fleet, session: str) -> str:
    """What the agent's terminal shows now, its scrollback included."""
    return tmux(fleet, "capture-pane", "-p", "-J", "-t", f"={session}:", "-S", "-200")


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def wait_state(fleet: Fleet, name: str, state: str, timeout: float = 30) -> dict[str, Any]:
    workers = fleet.wait(
        lambda ws: name in ws and ws[name]["state"] == state, timeout, f"{name} to be {state}"
    )
    return workers[name]


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def gone(proc: psutil.Process) -> bool:
    """True once the process has exited (a zombie counts as exited)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def hook_records(run_dir: str | Path) -> list[str]:
    path = Path(run_dir) / "hooks.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def transcript(run_dir: str | Path) -> list[dict[str, Any]]:
    """The worker's normalized events (events.jsonl), as `fleet logs` shows them."""
    path = Path(run_dir) / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]
