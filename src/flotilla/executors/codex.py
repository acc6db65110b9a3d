"""Codex (`codex exec --json`): one JSON event a line, thread/turn/item shaped.

Codex prints no cost and no model name: the parser takes the model from the
launch spec so the usage can be priced (see `pricing`). Its `input_tokens`
already include `cached_input_tokens`, which is the convention all adapters use.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flotilla.domain.errors import UsageError
from flotilla.domain.events import AgentEvent, EventKind, Usage
from flotilla.executors import common, session_files
from flotilla.executors.base import Command, LaunchSpec, SessionPlace, register
from flotilla.executors.hooks import codex_notify_override

DEFAULT_SANDBOX = "workspace-write"  # exec's own default, read-only, cannot edit anything
SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
BYPASS = "bypass"  # --dangerously-bypass-approvals-and-sandbox


@register
class CodexExecutor:
    kind: ClassVar[str] = "codex"
    default_binary: ClassVar[str] = "codex"
    install_hint: ClassVar[str] = "npm install -g @openai/codex"
    supports_resume: ClassVar[bool] = True
    new_session_id: ClassVar[bool] = False  # thread.started says which id codex chose
    session_cumulative_usage: ClassVar[bool] = True

    def _sandbox(self, spec: LaunchSpec) -> list[str]:
        mode = spec.settings.permission_mode or DEFAULT_SANDBOX
        if mode == BYPASS:
            return ["--dangerously-bypass-approvals-and-sandbox"]
        if mode in SANDBOXES:
            return ["--sandbox", mode]
        choices = ", ".join((*SANDBOXES, BYPASS))
        raise UsageError(f"codex permission_mode {mode!r} is not one of: {choices}")

    def _model(self, spec: LaunchSpec) -> list[str]:
        return ["-m", spec.effective_model] if spec.effective_model else []

    def _tail(self, spec: LaunchSpec) -> list[str]:
        """extra flags, then `resume ID` when continuing, then the prompt (always last)."""
        tail = list(spec.settings.extra_flags)
        if spec.resume:
            tail += ["resume", common.require_session(spec, self.kind)]
        return [*tail, common.prompt_arg(spec)]

    def headless(self, spec: LaunchSpec) -> Command:
        argv = [common.binary(spec, self.default_binary), "exec", "--json", *self._sandbox(spec)]
        argv += ["--skip-git-repo-check", "-C", str(spec.worktree)]
        argv += ["-o", str(spec.run_dir / "last-message.txt"), *self._model(spec)]
        return Command(argv=argv + self._tail(spec), env=dict(spec.settings.env), cwd=spec.worktree)

    def interactive(self, spec: LaunchSpec) -> Command:
        argv = [common.binary(spec, self.default_binary), *self._sandbox(spec)]
        argv += ["-C", str(spec.worktree), *self._model(spec)]
        argv += ["-c", codex_notify_override(spec.run_dir)]
        return Command(argv=argv + self._tail(spec), env=dict(spec.settings.env), cwd=spec.worktree)

    def parser(self, spec: LaunchSpec | None = None) -> CodexParser:
        return CodexParser(model=spec.effective_model if spec else None)

    def carry_session(self, session_id: str, source: SessionPlace, target: SessionPlace) -> bool:
        """Nothing to carry: codex keeps one session store (`$CODEX_HOME/sessions`) for
        every folder, and `exec -C NEW resume ID` continues the thread in NEW, telling the
        model its new working folder and sandbox roots. True when the target's store has the
        rollout. The thread is not forked: the restored worker's turns are appended to the
        same thread as the checkpointed worker's."""
        return session_files.codex_has_session(target.env, session_id)


class CodexParser:
    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.thread_id: str | None = None
        self.saw_result = False
        self._last_message = ""

    def feed(self, line: str) -> list[AgentEvent]:
        raw = common.json_object(line, "executors.codex_bad_json")
        if raw is None:
            return common.text_event(line)
        kind = raw.get("type")
        if kind == "thread.started":
            self.thread_id = common.as_str(raw.get("thread_id")) or self.thread_id
            return [
                AgentEvent(
                    EventKind.SESSION_STARTED, session_id=self.thread_id, data={"model": self.model}
                )
            ]
        if kind in ("item.started", "item.completed"):
            return self._item(common.as_dict(raw.get("item")), completed=kind == "item.completed")
        if kind == "turn.completed":
            return self._turn_completed(common.as_dict(raw.get("usage")))
        if kind == "turn.failed":
            return self._turn_failed(common.as_str(common.as_dict(raw.get("error")).get("message")))
        if kind == "error":
            return [common.failure(common.as_str(raw.get("message")) or "codex reported an error")]
        return []  # turn.started, item.updated, reasoning: nothing to report

    def _item(self, item: dict[str, Any], completed: bool) -> list[AgentEvent]:
        kind = item.get("type")
        if kind == "agent_message" and completed:
            self._last_message = common.as_str(item.get("text"))
            return common.text_event(self._last_message)
        if kind == "command_execution":
            command = common.as_str(item.get("command"))
            if not completed:
                return [
                    AgentEvent(
                        EventKind.TOOL_CALL, tool="command_execution", data={"command": command}
                    )
                ]
            exit_code = item.get("exit_code")
            failed = (isinstance(exit_code, int) and exit_code != 0) or item.get(
                "status"
            ) == "failed"
            return [
                AgentEvent(
                    EventKind.TOOL_RESULT,
                    tool="command_execution",
                    text=common.as_str(item.get("aggregated_output")),
                    is_error=failed,
                    data={"command": command, "exit_code": exit_code},
                )
            ]
        if kind == "file_change" and completed:
            raw_changes = item.get("changes")
            changes: list[Any] = raw_changes if isinstance(raw_changes, list) else []
            return [
                AgentEvent(
                    EventKind.TOOL_RESULT,
                    tool="file_change",
                    text=", ".join(common.as_str(common.as_dict(c).get("path")) for c in changes),
                    is_error=item.get("status") == "failed",
                    data={"changes": changes},
                )
            ]
        if kind == "mcp_tool_call":
            tool = f"{common.as_str(item.get('server'))}.{common.as_str(item.get('tool'))}"
            if not completed:
                return [
                    AgentEvent(
                        EventKind.TOOL_CALL, tool=tool, data=common.as_dict(item.get("arguments"))
                    )
                ]
            return [
                AgentEvent(
                    EventKind.TOOL_RESULT, tool=tool, is_error=item.get("status") == "failed"
                )
            ]
        if kind == "error" and completed:
            return [AgentEvent(EventKind.ERROR, text=common.as_str(item.get("message")))]
        return []

    def _turn_completed(self, raw: dict[str, Any]) -> list[AgentEvent]:
        self.saw_result = True
        usage = Usage(
            input_tokens=common.as_int(raw.get("input_tokens")),
            output_tokens=common.as_int(raw.get("output_tokens")),
            cached_input_tokens=common.as_int(raw.get("cached_input_tokens")),
            cost_usd=None,
            model=self.model,
        )
        return [
            AgentEvent(EventKind.USAGE, usage=usage, data={"final": True}),
            AgentEvent(
                EventKind.RESULT,
                text=self._last_message,
                usage=usage,
                session_id=self.thread_id,
                data={"reasoning_output_tokens": common.as_int(raw.get("reasoning_output_tokens"))},
            ),
        ]

    def _turn_failed(self, message: str) -> list[AgentEvent]:
        self.saw_result = True
        text = message or "codex turn failed"
        return [
            common.failure(text),
            AgentEvent(EventKind.RESULT, text=text, is_error=True, session_id=self.thread_id),
        ]

    def finish(self, exit_code: int, stderr_tail: str) -> list[AgentEvent]:
        if self.saw_result:
            return []
        return common.missing_result(exit_code, stderr_tail)
