"""One turn of an agent: start its process, and follow its output into events.

A worker's first run, a rate-limit retry, a stale restart and a follow-up prompt
are each a turn; each gets its own attempt folder so output never interleaves.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.domain.events import AgentEvent, EventKind
from flotilla.domain.worker import Worker
from flotilla.executors.base import Executor, LaunchSpec
from flotilla.executors.hooks import parse_hook_line
from flotilla.executors.pricing import Price, usage_cost
from flotilla.executors.registry import get_executor
from flotilla.orchestrator.agent_env import AgentAccess, with_access, without_secrets
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.runtime.launcher import launch_detached
from flotilla.runtime.process import ProcessIdentity
from flotilla.runtime.tailer import OutputTail
from flotilla.runtime.tmux import TmuxSession

ENV_FILE = "env.json"
TRANSCRIPT_FILE = "events.jsonl"
HOOKS_FILE = "hooks.jsonl"


def attempt_dir(worker: Worker, attempt: int | None = None) -> Path:
    return Path(worker.run_dir) / f"attempt-{attempt if attempt is not None else worker.attempt}"


def tmux_session_name(worker: Worker) -> str:
    """Named after the worker; the id suffix keeps two projects' workers apart."""
    return f"flotilla-{worker.name.replace('.', '_')}-{worker.id[:6]}"


def save_env(run_dir: Path, env: dict[str, str]) -> None:
    """The launching user's environment, kept private (it may hold API keys). A fleet token
    in it (an agent creating a worker passes its own environment) is not kept: each turn
    gets a token of its own (orchestrator.agent_env)."""
    path = run_dir / ENV_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(without_secrets(env), handle)


def load_env(run_dir: Path) -> dict[str, str]:
    path = run_dir / ENV_FILE
    if not path.exists():
        return dict(os.environ)
    env: dict[str, str] = json.loads(path.read_text())
    return env


@dataclass(frozen=True)
class StartedTurn:
    identity: ProcessIdentity
    attempt: int
    session_id: str | None
    hooks_start: int  # size of the hooks file before this turn: later lines are its own


def start_turn(
    worker: Worker,
    *,
    prompt: str,
    resume: bool,
    home: Path,
    tmux_socket: str,
    access: AgentAccess | None = None,
) -> StartedTurn:
    """Start the agent process for one turn. Raises if the process cannot start.

    `access`: the fleet's URL, socket and a token for the agent (None: none given)."""
    executor = get_executor(worker.agent)
    settings = RunSettings.from_dict(worker.settings)
    attempt = worker.attempt + 1
    folder = attempt_dir(worker, attempt)
    folder.mkdir(parents=True, exist_ok=True)
    if resume and worker.session_id:
        session_id: str | None = worker.session_id
    else:
        resume = False
        session_id = str(uuid.uuid4()) if executor.new_session_id else None
    spec = LaunchSpec(
        prompt=prompt,
        worktree=Path(worker.worktree),
        run_dir=Path(worker.run_dir),
        settings=settings.agent,
        model=worker.model,
        session_id=session_id,
        resume=resume,
    )
    env = load_env(Path(worker.run_dir))
    env.update(settings.agent.env)
    env.update(
        {
            "FLOTILLA_HOME": str(home),
            "FLOTILLA_WORKER": worker.name,
            "FLOTILLA_WORKER_ID": worker.id,
            "FLOTILLA_DEPTH": str(worker.depth),
            "FLOTILLA_ATTEMPT": str(attempt),
            "FLOTILLA_PROJECT": worker.project,
        }
    )
    env = with_access(env, worker, settings.timeout_s, access)
    hooks = Path(worker.run_dir) / HOOKS_FILE
    hooks_start = hooks.stat().st_size if hooks.exists() else 0
    if worker.interactive:
        command = executor.interactive(spec)
        identity = TmuxSession(tmux_socket).new_session(
            tmux_session_name(worker),
            command,
            cwd=Path(worker.worktree),
            base_env=env,
            log_path=folder / "stdout",
            attempt_dir=folder,
        )
    else:
        command = executor.headless(spec)
        identity = launch_detached(command, folder, env)
    return StartedTurn(identity, attempt, session_id, hooks_start)


@dataclass(frozen=True)
class UsageDelta:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> UsageDelta | None:
        if not raw:
            return None
        return cls(int(raw["input_tokens"]), int(raw["output_tokens"]), float(raw["cost_usd"]))


class TurnTracker:
    """Follows one attempt's output. Rebuilt after a daemon restart by replaying the
    output up to the stored offset, so no event is emitted or counted twice and parser
    state is whole again; what came after the offset is new, even if it was written
    while no daemon was watching."""

    def __init__(
        self,
        executor: Executor,
        folder: Path,
        interactive: bool,
        offset: int = 0,
        price: Price | None = None,
        session_base: UsageDelta | None = None,
        hooks_start: int = 0,
    ):
        self.folder = folder
        self.interactive = interactive
        self.parser = executor.parser()
        self.price = price
        self.events: list[AgentEvent] = []
        self._counted = UsageDelta()  # what this turn already added to the worker's totals
        # What earlier turns of this session reported, for CLIs whose totals accumulate.
        self._base = session_base if executor.session_cumulative_usage else None
        self.session_totals: UsageDelta | None = None  # this turn's final, as reported
        # The recorded offset is in the file events come from: the agent's stdout when
        # headless; the hooks file when interactive (the pane log is for people).
        stdout = folder / "stdout"
        hooks = Path(folder).parent / HOOKS_FILE
        source = hooks if interactive else stdout
        start = hooks_start if interactive else 0
        offset = max(offset, start)
        if offset > start and source.exists():
            with source.open("rb") as handle:
                handle.seek(start)
                data = handle.read(offset - start)
            for line in data.decode("utf-8", errors="replace").splitlines():
                replayed = self._parse(line)
                self.events.extend(replayed)
                self.account(replayed)  # already in the store: only rebuild the tally
        self._events_tail = OutputTail(source, offset=offset)
        self._pane_tail = OutputTail(stdout) if interactive else None
        self.activity = False  # output seen in the last poll (for stale detection)

    def _parse(self, line: str) -> list[AgentEvent]:
        if not self.interactive:
            return self.parser.feed(line)
        event = parse_hook_line(line)
        return [] if event is None else [event]

    @property
    def offset(self) -> int:
        return self._events_tail.offset

    def poll(self) -> list[AgentEvent]:
        before = self._events_tail.offset
        new: list[AgentEvent] = []
        for line in self._events_tail.read_lines():
            new.extend(self._parse(line))
        self.activity = self._events_tail.offset != before
        if self._pane_tail is not None:
            self.activity = bool(self._pane_tail.read_lines()) or self.activity
        self.events.extend(new)
        return new

    def account(self, events: list[AgentEvent]) -> UsageDelta:
        """Tokens and cost these events add to the worker's totals.

        Executors emit USAGE increments during a turn and one USAGE with
        data["final"] holding the turn's totals; the final one replaces the sum.
        """
        added = UsageDelta()
        for event in events:
            usage = event.usage
            if event.kind is not EventKind.USAGE or usage is None:
                continue
            cost = usage.cost_usd
            if cost is None:
                cost = usage_cost(usage, self.price) if self.price is not None else 0.0
            if event.data.get("final"):
                reported = UsageDelta(usage.input_tokens, usage.output_tokens, cost)
                self.session_totals = reported
                turn = _minus(reported, self._base) if self._base else reported
                step = _minus(turn, self._counted)
            else:
                step = UsageDelta(usage.input_tokens, usage.output_tokens, cost)
            self._counted = _plus(self._counted, step)
            added = _plus(added, step)
        return added

    def finish(self, exit_code: int) -> list[AgentEvent]:
        new = self.poll()
        stderr = self.folder / "stderr"
        tail = stderr.read_text(errors="replace")[-4000:] if stderr.exists() else ""
        if not self.interactive:
            final = self.parser.finish(exit_code, tail)
            self.events.extend(final)
            new.extend(final)
        return new


def _plus(a: UsageDelta, b: UsageDelta) -> UsageDelta:
    return UsageDelta(
        a.input_tokens + b.input_tokens, a.output_tokens + b.output_tokens, a.cost_usd + b.cost_usd
    )


def _minus(a: UsageDelta, b: UsageDelta) -> UsageDelta:
    return UsageDelta(
        a.input_tokens - b.input_tokens, a.output_tokens - b.output_tokens, a.cost_usd - b.cost_usd
    )


def append_transcript(run_dir: Path, attempt: int, events: list[AgentEvent]) -> None:
    if not events:
        return
    now = time.time()
    with (run_dir / TRANSCRIPT_FILE).open("a", encoding="utf-8") as handle:
        for event in events:
            record = {"t": round(now, 3), "attempt": attempt, **event.to_dict()}
            handle.write(json.dumps(record) + "\n")
