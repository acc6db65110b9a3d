"""Gemini CLI (`gemini -p ... --output-format stream-json`).

Assistant text arrives as `delta` chunks; the parser joins the chunks of one
message into a single TEXT event, emitted when anything else arrives. The exit
code carries the HTTP status mod 256 (429 -> 173) and 41/52 for auth/config
errors, so `finish` reads it even when a result was seen.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flotilla.domain.events import AgentEvent, EventKind, Usage
from flotilla.executors import common, session_files
from flotilla.executors.base import Command, LaunchSpec, SessionPlace, register

DEFAULT_APPROVAL_MODE = "yolo"  # with --skip-trust, else yolo is downgraded to read-only tools
EXIT_RATE_LIMITED = 429 % 256
EXIT_AUTH = (41, 52)


@register
class GeminiExecutor:
    kind: ClassVar[str] = "gemini"
    default_binary: ClassVar[str] = "gemini"
    install_hint: ClassVar[str] = "npm install -g @google/gemini-cli"
    supports_resume: ClassVar[bool] = True
    new_session_id: ClassVar[bool] = True
    session_cumulative_usage: ClassVar[bool] = False

    def _flags(self, spec: LaunchSpec) -> list[str]:
        mode = spec.settings.permission_mode or DEFAULT_APPROVAL_MODE
        flags = ["--approval-mode", mode, "--skip-trust"]
        if spec.effective_model:
            flags += ["-m", spec.effective_model]
        if spec.resume:
            flags += ["--resume", common.require_session(spec, self.kind)]
        elif spec.session_id:
            flags += ["--session-id", spec.session_id]
        return flags + list(spec.settings.extra_flags)

    def headless(self, spec: LaunchSpec) -> Command:
        argv = [common.binary(spec, self.default_binary), "-p", common.prompt_arg(spec)]
        argv += ["--output-format", "stream-json", *self._flags(spec)]
        return Command(argv=argv, env=dict(spec.settings.env), cwd=spec.worktree)

    def interactive(self, spec: LaunchSpec) -> Command:
        argv = [common.binary(spec, self.default_binary), "-i", common.prompt_arg(spec)]
        return Command(
            argv=argv + self._flags(spec), env=dict(spec.settings.env), cwd=spec.worktree
        )

    def parser(self, spec: LaunchSpec | None = None) -> GeminiParser:
        return GeminiParser(model=spec.effective_model if spec else None)

    def carry_session(self, session_id: str, source: SessionPlace, target: SessionPlace) -> bool:
        """Gemini files sessions by project folder (`--resume` elsewhere: "No previous
        sessions found for this project"): a copy goes under the target folder's project
        slug, claimed for it if it has none yet (session_files)."""
        return session_files.carry_gemini(session_id, source, target)


class GeminiParser:
    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.session_id: str | None = None
        self.saw_result = False
        self._chunks: list[str] = []
        self._last_message = ""
        self._tool_names: dict[str, str] = {}
        self._reported: set[EventKind] = set()

    def feed(self, line: str) -> list[AgentEvent]:
        raw = common.json_object(line, "executors.gemini_bad_json")
        if raw is None:
            return self._flush() + common.text_event(line)
        kind = raw.get("type")
        if kind == "message":
            return self._message(raw)
        events = self._flush()
        if kind == "init":
            self.session_id = common.as_str(raw.get("session_id")) or self.session_id
            self.model = common.as_str(raw.get("model")) or self.model
            events.append(
                AgentEvent(
                    EventKind.SESSION_STARTED,
                    session_id=self.session_id,
                    data={"model": self.model},
                )
            )
        elif kind == "tool_use":
            name = common.as_str(raw.get("tool_name")) or "tool"
            self._tool_names[common.as_str(raw.get("tool_id"))] = name
            events.append(
                AgentEvent(
                    EventKind.TOOL_CALL, tool=name, data=common.as_dict(raw.get("parameters"))
                )
            )
        elif kind == "tool_result":
            events.append(self._tool_result(raw))
        elif kind == "error":
            text = common.as_str(raw.get("message")) or "gemini reported an error"
            if raw.get("severity") == "warning":
                events.append(AgentEvent(EventKind.TEXT, text=f"warning: {text}"))
            else:
                events.append(self._note(common.failure(text)))
        elif kind == "result":
            events += self._result(raw)
        return events

    def _message(self, raw: dict[str, Any]) -> list[AgentEvent]:
        if raw.get("role") != "assistant":
            return self._flush()  # the user's prompt echoed back
        content = common.as_str(raw.get("content"))
        if raw.get("delta"):
            self._chunks.append(content)
            return []
        return [*self._flush(), *self._text(content)]

    def _flush(self) -> list[AgentEvent]:
        if not self._chunks:
            return []
        text, self._chunks = "".join(self._chunks), []
        return self._text(text)

    def _text(self, text: str) -> list[AgentEvent]:
        if not text.strip():
            return []
        self._last_message = text
        return [AgentEvent(EventKind.TEXT, text=text)]

    def _tool_result(self, raw: dict[str, Any]) -> AgentEvent:
        tool_id = common.as_str(raw.get("tool_id"))
        error = common.as_dict(raw.get("error"))
        output = common.as_str(raw.get("output")) or common.as_str(error.get("message"))
        return AgentEvent(
            EventKind.TOOL_RESULT,
            tool=self._tool_names.get(tool_id, tool_id or None),
            text=output,
            is_error=raw.get("status") not in (None, "success"),
        )

    def _note(self, event: AgentEvent) -> AgentEvent:
        self._reported.add(event.kind)
        return event

    def _result(self, raw: dict[str, Any]) -> list[AgentEvent]:
        self.saw_result = True
        stats = common.as_dict(raw.get("stats"))
        cached = stats.get("cached", stats.get("cached_input_tokens"))
        usage = Usage(
            input_tokens=common.as_int(stats.get("input_tokens")),
            output_tokens=common.as_int(stats.get("output_tokens")),
            cached_input_tokens=common.as_int(cached),
            cost_usd=None,
            model=self.model,
        )
        status = common.as_str(raw.get("status")) or "success"
        error = common.as_dict(raw.get("error"))
        events = [AgentEvent(EventKind.USAGE, usage=usage, data={"final": True})]
        text = self._last_message
        if status != "success":
            text = common.as_str(error.get("message")) or f"gemini ended with status {status}"
            events.append(self._note(common.failure(text)))
        data: dict[str, Any] = {"status": status}
        if error:
            data["error"] = error
        events.append(
            AgentEvent(
                EventKind.RESULT,
                text=text,
                is_error=status != "success",
                usage=usage,
                session_id=self.session_id,
                data=data,
            )
        )
        return events

    def finish(self, exit_code: int, stderr_tail: str) -> list[AgentEvent]:
        events = self._flush()
        kind: EventKind | None = None
        if exit_code == EXIT_RATE_LIMITED:
            kind = EventKind.RATE_LIMITED
        elif exit_code in EXIT_AUTH:
            kind = EventKind.AUTH_FAILED
        if not self.saw_result:
            return events + common.missing_result(exit_code, stderr_tail, kind)
        if kind is not None and kind not in self._reported:
            text = common.tail(stderr_tail) or f"gemini exited with code {exit_code}"
            events.append(AgentEvent(kind, text=text))
        return events
