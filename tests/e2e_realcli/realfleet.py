"""Point a real agent CLI, run by Flotilla, at a fake model API, through config alone.

Everything an agent run needs (base URL, key, HOME, the CLI's retry cap, codex's
provider flags, the model) goes into `.flotilla/config.toml` `[agents.<kind>]`, the way
a user would configure it; the fleet CLI itself gets nothing but the launchers on PATH.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e_support import Fleet

from fakemodels import FakeModelServer, cli_env
from fakemodels.clienv import MODELS

KINDS = ["claude", "codex", "gemini"]
# Prices put in config for the CLIs that print no cost; distinct from any default, so a
# matching figure proves the configured table was used.
PRICES: dict[str, tuple[float, float]] = {"codex": (3.0, 15.0), "gemini": (2.0, 12.0)}
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class Retry:
    base_delay_s: float = 0.2
    max_delay_s: float = 1.0
    max_retries: int = 3


@dataclass(frozen=True)
class AgentSetup:
    kind: str
    model: str
    worktree_root: Path
    agent_home: Path

    def worktree(self, name: str) -> Path:
        return self.worktree_root / name

    def price(self) -> tuple[float, float] | None:
        return PRICES.get(self.kind)


def configure(fleet: Fleet, kind: str, fake: FakeModelServer, retry: Retry = Retry()) -> AgentSetup:
    """Write the project config that makes `kind` talk to `fake`; the CLI never retries."""
    root = fleet.repo.parent / "worktrees"
    agent_home = fleet.repo.parent / f"{kind}-home"
    cli = cli_env(kind, agent_home, fake.base_url, max_attempts=1)
    model = MODELS[kind]
    lines = [
        "[project]",
        f"default_agent = {_toml(kind)}",
        f"worktree_root = {_toml(str(root))}",
        "",
        "[limits]",
        "timeout_s = 180.0",
        "",
        "[retry]",
        f"base_delay_s = {retry.base_delay_s!r}",
        f"max_delay_s = {retry.max_delay_s!r}",
        f"max_retries = {retry.max_retries}",
        "jitter = 0.0",
        "",
        f"[agents.{kind}]",
        f"model = {_toml(model)}",
        f"extra_flags = {_toml(list(cli.extra_flags))}",
        "",
        f"[agents.{kind}.env]",
        *(f"{name} = {_toml(value)}" for name, value in sorted(cli.env.items())),
    ]
    price = PRICES.get(kind)
    if price is not None:
        lines += [
            "",
            f"[prices.{_toml(model)}]",
            f"input_per_mtok = {price[0]!r}",
            f"output_per_mtok = {price[1]!r}",
        ]
    folder = fleet.repo / ".flotilla"
    folder.mkdir(exist_ok=True)
    (folder / "config.toml").write_text("\n".join(lines) + "\n")
    return AgentSetup(kind, model, root, agent_home)


def _toml(value: str | Sequence[str]) -> str:
    """A TOML string or array of strings (JSON string escapes are valid TOML)."""
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(json.dumps(v) for v in value) + "]"


def create(fleet: Fleet, setup: AgentSetup, name: str, prompt: str) -> dict[str, Any]:
    created = fleet.json("create", name, "-p", prompt, "--agent", setup.kind)
    worker: dict[str, Any] = created[0]
    assert worker["worktree"] == str(setup.worktree(name)), worker
    return worker


def wait_done(fleet: Fleet, name: str, timeout: float = 120) -> dict[str, Any]:
    return fleet.wait_terminal(name, timeout=timeout)[name]


def wait_attempt(fleet: Fleet, name: str, attempt: int, timeout: float = 120) -> dict[str, Any]:
    """The worker once turn `attempt` has ended (in any terminal state)."""
    workers = fleet.wait(
        lambda ws: ws[name]["attempt"] >= attempt and ws[name]["state"] in TERMINAL,
        timeout,
        f"{name} to finish turn {attempt}",
    )
    return workers[name]


def raw_events(fleet: Fleet, name: str) -> list[dict[str, Any]]:
    """The agent's own JSON-lines output, every attempt, as `fleet logs --raw` gives it."""
    events = []
    for line in fleet.run("logs", name, "--raw").stdout.splitlines():
        if line.startswith("{"):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                events.append(parsed)
    return events


def changed_paths(result: Mapping[str, Any]) -> set[str]:
    return {f["path"] for f in result["files"]}


def describe(fleet: Fleet, name: str) -> str:
    """What to show when an assertion about a worker fails: its state and output."""
    worker = fleet.workers().get(name, {})
    raw = fleet.run("logs", name, "--raw", check=False).stdout[-4000:]
    run_dir = Path(worker.get("run_dir") or "/nonexistent")
    stderr = "\n".join(
        f"--- {p}\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted(run_dir.glob("attempt-*/stderr"))
    )
    shown = {k: worker.get(k) for k in ("state", "outcome", "error", "attempt", "retries")}
    return f"worker: {json.dumps(shown)}\nraw output:\n{raw}\nstderr:\n{stderr}"
