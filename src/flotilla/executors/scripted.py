"""The scripted executor: runs Flotilla's own offline agent (`scripted_agent`).

It needs no API key and no network, so it drives the demo, dry runs and tests
through exactly the paths a real agent takes. The script is checked when the
command is built, so a broken script fails the launch, not the run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

from flotilla import counters
from flotilla.domain.events import AgentEvent, EventKind
from flotilla.executors import common
from flotilla.executors.base import Command, LaunchSpec, SessionPlace, register
from flotilla.executors.hooks import hooks_path
from flotilla.executors.scripted_script import load_script
from flotilla.executors.shell import prompt_env


def script_path(spec: LaunchSpec) -> Path | None:
    """The script to follow (relative paths are looked up in the worktree), checked."""
    name = spec.settings.script or spec.settings.env.get("FLOTILLA_SCRIPT")
    if not name:
        return None
    path = Path(name)
    if not path.is_absolute():
        path = spec.worktree / path
    load_script(path)  # raises UsageError with the line to fix
    return path


@register
class ScriptedExecutor:
    kind: ClassVar[str] = "scripted"
    default_binary: ClassVar[str] = sys.executable
    install_hint: ClassVar[str] = "built into Flotilla: nothing to install"
    supports_resume: ClassVar[bool] = True
    new_session_id: ClassVar[bool] = True
    session_cumulative_usage: ClassVar[bool] = False

    def _argv(self, spec: LaunchSpec, hooks: Path | None = None) -> list[str]:
        # -P: a `flotilla` folder in the worktree must not shadow the installed package.
        argv = [
            common.binary(spec, self.default_binary),
            "-P",
            "-m",
            "flotilla.executors.scripted_agent",
        ]
        if hooks is not None:
            argv += ["--hooks", str(hooks)]
        script = script_path(spec)
        if script is not None:
            argv += ["--script", str(script)]
        if spec.resume:
            argv += ["--resume", "--session-id", common.require_session(spec, self.kind)]
        elif spec.session_id:
            argv += ["--session-id", spec.session_id]
        return [*argv, *spec.settings.extra_flags, "--", spec.prompt]

    def headless(self, spec: LaunchSpec) -> Command:
        return Command(argv=self._argv(spec), env=prompt_env(spec), cwd=spec.worktree)

    def interactive(self, spec: LaunchSpec) -> Command:
        argv = self._argv(spec, hooks=hooks_path(spec.run_dir))
        return Command(argv=argv, env=prompt_env(spec), cwd=spec.worktree)

    def parser(self, spec: LaunchSpec | None = None) -> ScriptedParser:
        return ScriptedParser()

    def carry_session(self, session_id: str, source: SessionPlace, target: SessionPlace) -> bool:
        """The scripted agent stores no session: any id resumes anywhere."""
        return True


class ScriptedParser:
    """Each JSON line is an `AgentEvent.to_dict()`; anything else is TEXT."""

    def __init__(self) -> None:
        self.saw_result = False

    def feed(self, line: str) -> list[AgentEvent]:
        raw = common.json_object(line, "executors.scripted_bad_json")
        if raw is None:
            return common.text_event(line)
        try:
            event = AgentEvent.from_dict(raw)
        except (KeyError, ValueError, TypeError):
            counters.count("executors.scripted_not_an_event")
            return common.text_event(line)
        self.saw_result = self.saw_result or event.kind is EventKind.RESULT
        return [event]

    def finish(self, exit_code: int, stderr_tail: str) -> list[AgentEvent]:
        if self.saw_result:
            return []
        kind = {
            common.EXIT_TEMPFAIL: EventKind.RATE_LIMITED,
            common.EXIT_NOPERM: EventKind.AUTH_FAILED,
        }
        return common.missing_result(exit_code, stderr_tail, kind.get(exit_code))
