"""The executor interface: how Flotilla turns a launch into a command and output into events.

Adding an agent kind means one new module with a class implementing `Executor`,
decorated with `@register`, and listed in `registry.BUILTIN_MODULES`.
Nothing else in Flotilla looks at the kind's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from flotilla.domain.events import AgentEvent


@dataclass(frozen=True)
class AgentSettings:
    """Per-agent settings from config (`[agents.<kind>]`)."""

    binary: str | None = None  # None: the executor's default binary name
    model: str | None = None
    extra_flags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    permission_mode: str | None = None  # executor-specific; None: the executor's default
    command: str | None = None  # shell executor: the command line run through `sh -c`
    script: str | None = None  # scripted executor: path of the script file
    mcp: bool = False  # give the agent the fleet's MCP server (executors that can: claude)


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an executor needs to build a command for one turn."""

    prompt: str
    worktree: Path
    run_dir: Path  # the worker's folder; executors may put files here (e.g. codex -o)
    settings: AgentSettings = AgentSettings()
    model: str | None = None  # overrides settings.model
    session_id: str | None = None  # pre-chosen id for a new session, or the one to resume
    resume: bool = False  # continue `session_id` with `prompt` as the next turn

    @property
    def effective_model(self) -> str | None:
        return self.model or self.settings.model


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the daemon's environment
    stdin: str | None = None  # text written to stdin, then closed; None: stdin is /dev/null
    cwd: Path | None = None


@dataclass(frozen=True)
class SessionPlace:
    """Where an agent session's turns run: the working folder, and the agent's environment,
    whose variables (HOME, CLAUDE_CONFIG_DIR, CODEX_HOME, GEMINI_CLI_HOME) say where the CLI
    keeps its sessions."""

    folder: Path
    env: Mapping[str, str] = field(default_factory=dict)


class OutputParser(Protocol):
    """Stateful, line-by-line parser of one run's stdout. Pure: no I/O."""

    def feed(self, line: str) -> list[AgentEvent]:
        """Events for one output line (without its newline). Unparseable lines become TEXT."""
        ...

    def finish(self, exit_code: int, stderr_tail: str) -> list[AgentEvent]:
        """Events known only at exit (e.g. an error seen only in stderr or the exit code)."""
        ...


class Executor(Protocol):
    kind: ClassVar[str]
    default_binary: ClassVar[str]
    install_hint: ClassVar[str]  # e.g. "npm install -g @openai/codex"
    supports_resume: ClassVar[bool]
    new_session_id: ClassVar[bool]  # True: Flotilla picks the session id up front (uuid4)
    # True: a resumed turn's final USAGE is the whole session's running total (codex),
    # so Flotilla subtracts what earlier turns of the session already reported.
    session_cumulative_usage: ClassVar[bool]

    def headless(self, spec: LaunchSpec) -> Command:
        """Command for a headless turn (new session, or resume when spec.resume)."""
        ...

    def interactive(self, spec: LaunchSpec) -> Command:
        """Command that runs the agent's own TUI with the prompt as an argument."""
        ...

    def parser(self, spec: LaunchSpec | None = None) -> OutputParser:
        """A fresh parser for one run. `spec` lets a parser fill in what the output omits
        (e.g. the model name codex never prints, needed to price its usage)."""
        ...

    def carry_session(self, session_id: str, source: SessionPlace, target: SessionPlace) -> bool:
        """Make `session_id`, recorded by turns run in `source`, resumable by a turn run in
        `target` (a checkpoint restored into a new worktree). CLIs that file sessions by
        working folder get a copy filed under `target` (the source's copy is untouched, so
        the two continue apart). True: a resume in `target` will find the session. False:
        it is nowhere to be found, so the caller starts a new session instead."""
        ...


ExecutorFactory = Callable[[], Executor]
_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make an executor available under its `kind`."""
    kind: str = cls.kind  # type: ignore[attr-defined]
    _REGISTRY[kind] = cls
    return cls


def registered() -> dict[str, type]:
    return dict(_REGISTRY)
