"""Helpers of the executor tests: recorded transcripts and running commands for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from flotilla.domain.events import AgentEvent, EventKind
from flotilla.executors.base import Command, OutputParser

TRANSCRIPTS = Path(__file__).parent / "transcripts"

# Prompts that break anything that ever passes through a shell unquoted.
NASTY_PROMPTS = [
    "it's broken",
    'say "hi" and $HOME and `whoami` and $(id) ; rm -rf / # not really',
    "line one\nline two\n\ttabbed \\ backslash",
    "-p --dangerously-skip-permissions looks like flags",
    "émoji ✓ 🚀 and NUL-free unicode",
]


def transcript(name: str) -> list[str]:
    return (TRANSCRIPTS / name).read_text(encoding="utf-8").splitlines()


def drive(
    parser: OutputParser, lines: list[str], exit_code: int = 0, stderr: str = ""
) -> list[AgentEvent]:
    """Feed every line, then finish, as the supervisor does."""
    events: list[AgentEvent] = []
    for line in lines:
        events += parser.feed(line)
    return events + parser.finish(exit_code, stderr)


def kinds(events: list[AgentEvent]) -> list[EventKind]:
    return [e.kind for e in events]


def only(events: list[AgentEvent], kind: EventKind) -> AgentEvent:
    found = [e for e in events if e.kind is kind]
    assert len(found) == 1, f"expected one {kind}, got {kinds(events)}"
    return found[0]


def run_command(
    command: Command, timeout: float = 60, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Command for real: its env over ours, its stdin text or /dev/null."""
    env = {**os.environ, **command.env, **(extra_env or {})}
    return subprocess.run(
        command.argv,
        cwd=command.cwd,
        env=env,
        input=command.stdin,
        stdin=subprocess.DEVNULL if command.stdin is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
