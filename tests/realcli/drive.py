"""Run a real agent CLI headless, the documented way, and collect its JSON-lines output."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakemodels.clienv import MODELS, CliEnv, launcher, missing_reason
from flotilla.counters import count


def require(kind: str) -> Path:
    """The CLI's launcher; skip the test when it is missing, but fail it under CI=true."""
    reason = missing_reason(kind)
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and the real {kind} CLI is unavailable: {reason}")
        pytest.skip(reason)
    path = launcher(kind)
    assert path is not None
    return path


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def last(self, kind: str) -> dict[str, Any]:
        found = self.of_type(kind)
        assert found, f"no {kind!r} event in output:\n{self.stdout}\nstderr:\n{self.stderr}"
        return found[-1]

    def describe(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr[-3000:]}"


def run(argv: list[str], cli: CliEnv, cwd: Path, timeout: float = 120) -> Outcome:
    """Run with stdin closed and the CLI's own environment only."""
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=cli.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    events = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                count("realcli.non_json_line")  # a line that only looks like JSON
    return Outcome(proc.returncode, proc.stdout, proc.stderr, events)


def headless_argv(
    kind: str,
    cli: CliEnv,
    prompt: str,
    repo: Path,
    *,
    session_id: str | None = None,
    resume: str | None = None,
) -> list[str]:
    """The argv documented in AGENT-CLIS.md, for a new session or a resumed one."""
    binary = str(require(kind))
    model = MODELS[kind]
    if kind == "claude":
        argv = [binary, "-p", prompt, "--output-format", "stream-json", "--verbose"]
        argv += ["--dangerously-skip-permissions", "--model", model, *cli.extra_flags]
        if resume:
            return [*argv, "--resume", resume]
        return [*argv, "--session-id", session_id] if session_id else argv
    if kind == "codex":
        argv = [binary, "exec", "--json", "-m", model, "--sandbox", "workspace-write"]
        argv += ["--skip-git-repo-check", "-C", str(repo), "-o", str(cli.home / "last.txt")]
        argv += list(cli.extra_flags)
        return [*argv, "resume", resume, prompt] if resume else [*argv, prompt]
    if kind == "gemini":
        argv = [binary, "-p", prompt, "--output-format", "stream-json", "--yolo", "--skip-trust"]
        argv += ["-m", model, *cli.extra_flags]
        if resume:
            return [*argv, "--resume", resume]
        return [*argv, "--session-id", session_id] if session_id else argv
    raise ValueError(f"unknown agent CLI {kind!r}")
