"""Scripted agents for workflow tests: real git, the real CLI and daemon, a fake model.

Every agent (the `scripted` kind, and the `shell` kind used for judges) runs one
dispatch script that records the start (`starts.log`, one line per agent start,
outside every worktree), keeps the prompt it got, then runs the behaviour the
test set for its stage: `on/<stage>.sh`, or `on/<stage>-<n>.sh` for one worker
of a fan-out, or `on/<stage>-r<k>.sh` for attempt k. Worker names are
`wf-<id>-<stage>[-<n>][-r<k>]`, so the behaviour is found from $FLOTILLA_WORKER.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e_support import Fleet

DISPATCH = """\
set -e
LOG="{root}"
echo "$FLOTILLA_WORKER" >> "$LOG/starts.log"
printf '%s' "$FLOTILLA_PROMPT" > "$LOG/prompts/$FLOTILLA_WORKER.txt"
rest="${{FLOTILLA_WORKER#wf-*-}}"
stage="${{rest%%-*}}"
WF="${{FLOTILLA_WORKER#wf-}}"
export WF="${{WF%%-*}}"
for key in "$rest" "$stage"; do
  if [ -f "$LOG/on/$key.sh" ]; then
    exec sh "$LOG/on/$key.sh"
  fi
done
"""

AGENT = """\
[[steps]]
action = "run"
command = "sh {dispatch}"
check = true
[[steps]]
action = "usage"
input_tokens = {tokens_in}
output_tokens = {tokens_out}
cost_usd = {cost}
[[steps]]
action = "next_steps"
items = ["check the edge cases"]
[[steps]]
action = "say"
text = "work done (attempt {{attempt}})"
"""

# Two checks, one of which fails until app.answer() returns 42; pytest-like summary.
TESTS = """\
import app
checks = [app.answer() == 42, True]
passed = sum(checks)
failed = len(checks) - passed
print(f"{passed} passed, {failed} failed in 0.01s" if failed else f"{passed} passed in 0.01s")
raise SystemExit(1 if failed else 0)
"""
FIX = "printf 'def answer():\\n    return 42\\n' > app.py\n"
BREAK = "printf 'def answer(:\\n' > app.py\n"


@dataclass
class Agents:
    fleet: Fleet
    root: Path

    def on(self, key: str, script: str) -> None:
        """What the agent of stage (or worker key) `key` does, as a shell script in its
        worktree ($WF is the workflow id)."""
        (self.root / "on" / f"{key}.sh").write_text(script)

    def starts(self) -> list[str]:
        path = self.root / "starts.log"
        return path.read_text().split() if path.exists() else []

    def prompt(self, worker: str) -> str:
        return (self.root / "prompts" / f"{worker}.txt").read_text()

    def gate(self, name: str) -> str:
        """A script line that waits until `release(name)` is called."""
        return f'while [ ! -f "{self.root}/go-{name}" ]; do sleep 0.05; done\n'

    def release(self, name: str) -> None:
        (self.root / f"go-{name}").touch()


def setup_agents(
    fleet: Fleet, *, tests: bool = False, usage: tuple[int, int, float] = (1000, 500, 0.01)
) -> Agents:
    root = fleet.home.parent / "agents"
    (root / "on").mkdir(parents=True, exist_ok=True)
    (root / "prompts").mkdir(exist_ok=True)
    dispatch = root / "dispatch.sh"
    dispatch.write_text(DISPATCH.format(root=root))
    script = root / "agent.toml"
    tokens_in, tokens_out, cost = usage
    script.write_text(
        AGENT.format(dispatch=dispatch, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost)
    )
    configure(fleet, root, tests=tests)
    return Agents(fleet, root)


def configure(fleet: Fleet, root: Path, *, tests: bool, extra: str = "") -> None:
    test_line = f'test_command = "{sys.executable} tests.py"\n' if tests else ""
    (fleet.repo / ".flotilla").mkdir(exist_ok=True)
    (fleet.repo / ".flotilla" / "config.toml").write_text(
        f'[project]\ndefault_agent = "scripted"\n{test_line}{extra}\n'
        f'[agents.scripted]\nscript = "{root / "agent.toml"}"\n'
        f'[agents.shell]\ncommand = "sh {root / "dispatch.sh"}"\n'
    )


def add_tests(fleet: Fleet) -> None:
    """Commit the project's tests (failing at first: answer() is 41, not 42)."""
    from e2e_support import git

    (fleet.repo / "tests.py").write_text(TESTS)
    git(fleet.repo, "add", "tests.py")
    git(fleet.repo, "commit", "-q", "-m", "tests")


TERMINAL = ("succeeded", "failed", "cancelled")


def start(fleet: Fleet, *args: str) -> dict[str, Any]:
    """`fleet workflow run ARGS` (not watched): the started workflow."""
    data: dict[str, Any] = fleet.json("workflow", "run", *args)
    return data


def status(fleet: Fleet, workflow_id: str) -> dict[str, Any]:
    data: dict[str, Any] = fleet.json("workflow", "status", workflow_id)
    return data


def wait_done(fleet: Fleet, workflow_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    data = status(fleet, workflow_id)
    while data["state"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow did not end: {json.dumps(data, indent=1)}")
        time.sleep(0.2)
        data = status(fleet, workflow_id)
    return data


def wait_stage(
    fleet: Fleet, workflow_id: str, stage: str, states: tuple[str, ...], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data = status(fleet, workflow_id)
        found = next(s for s in data["stages"] if s["name"] == stage)
        if found["state"] in states:
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"stage {stage} not in {states}: {json.dumps(data, indent=1)}")
        time.sleep(0.1)


def stage(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["stages"] if s["name"] == name)
    return found


def kill_daemon(fleet: Fleet) -> None:
    """kill -9 the daemon (agents live on in their own sessions)."""
    pid_file = fleet.home / "daemon.pid"
    pid = json.loads(pid_file.read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"daemon {pid} survived SIGKILL")
