"""Any command line as the agent: `[agents.shell] command = "..."` runs through `sh -c`.

The prompt reaches the command twice: in env FLOTILLA_PROMPT and on stdin.
Every output line is TEXT; the last non-empty lines become the result. Exit 75
(EX_TEMPFAIL) reports a rate limit and 77 (EX_NOPERM) an authentication failure,
so wrappers around other tools can ask for a retry later. There is no session:
a follow-up runs the command again with the new prompt (FLOTILLA_RESUME=1).
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from flotilla.domain.errors import UsageError
from flotilla.domain.events import AgentEvent, EventKind
from flotilla.executors import common
from flotilla.executors.base import Command, LaunchSpec, SessionPlace, register

RESULT_LINES = 20


def prompt_env(spec: LaunchSpec) -> dict[str, str]:
    """The FLOTILLA_* variables a command agent can read, over the configured env."""
    env = dict(spec.settings.env)
    env["FLOTILLA_PROMPT"] = spec.prompt
    env["FLOTILLA_WORKTREE"] = str(spec.worktree)
    env["FLOTILLA_RUN_DIR"] = str(spec.run_dir)
    if spec.session_id:
        env["FLOTILLA_SESSION_ID"] = spec.session_id
    if spec.resume:
        env["FLOTILLA_RESUME"] = "1"
    return env


@register
class ShellExecutor:
    kind: ClassVar[str] = "shell"
    default_binary: ClassVar[str] = "sh"
    install_hint: ClassVar[str] = 'set [agents.shell] command = "..." (any command line)'
    supports_resume: ClassVar[bool] = False
    new_session_id: ClassVar[bool] = False
    session_cumulative_usage: ClassVar[bool] = False

    def _argv(self, spec: LaunchSpec) -> list[str]:
        settings = spec.settings
        if settings.command:
            return [self.default_binary, "-c", settings.command]
        if settings.binary:
            return [settings.binary, *settings.extra_flags]
        raise UsageError('the shell agent needs a command: set [agents.shell] command = "..."')

    def headless(self, spec: LaunchSpec) -> Command:
        return Command(
            argv=self._argv(spec), env=prompt_env(spec), stdin=spec.prompt, cwd=spec.worktree
        )

    def interactive(self, spec: LaunchSpec) -> Command:
        # In a terminal the person types; the prompt stays available in the env.
        return Command(argv=self._argv(spec), env=prompt_env(spec), cwd=spec.worktree)

    def parser(self, spec: LaunchSpec | None = None) -> ShellParser:
        return ShellParser()

    def carry_session(self, session_id: str, source: SessionPlace, target: SessionPlace) -> bool:
        return False  # a command has no session to resume


class ShellParser:
    def __init__(self) -> None:
        self._last: deque[str] = deque(maxlen=RESULT_LINES)

    def feed(self, line: str) -> list[AgentEvent]:
        if not line.strip():
            return []
        self._last.append(line)
        return [AgentEvent(EventKind.TEXT, text=line)]

    def finish(self, exit_code: int, stderr_tail: str) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        if exit_code == common.EXIT_TEMPFAIL:
            events.append(
                AgentEvent(EventKind.RATE_LIMITED, text=common.tail(stderr_tail) or "exit code 75")
            )
        elif exit_code == common.EXIT_NOPERM:
            events.append(
                AgentEvent(EventKind.AUTH_FAILED, text=common.tail(stderr_tail) or "exit code 77")
            )
        elif exit_code != 0:
            text = common.tail(stderr_tail) or f"the command exited with code {exit_code}"
            events.append(AgentEvent(EventKind.ERROR, text=text))
        result = AgentEvent(
            EventKind.RESULT,
            text="\n".join(self._last),
            is_error=exit_code != 0,
            data={"exit_code": exit_code},
        )
        return [*events, result]
