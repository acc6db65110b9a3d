"""Claude Code (`claude`): `-p` with stream-json output, one JSON event a line.

Token convention (shared with the other adapters): `input_tokens` counts every
prompt token, cached or not; `cached_input_tokens` is the part read from the
prompt cache. Claude reports cache reads and writes apart from `input_tokens`,
so they are added in. Claude gives its own cost (`total_cost_usd`).

With `mcp = true` (`[agents.claude]`, or `[mcp] give_agents`), the agent gets the
fleet's MCP server: `--mcp-config` naming `fleet mcp` as a stdio server. The file
holds no secret: Claude expands `${FLOTILLA_TOKEN:-}` and the other variables from
its own environment, where the turn put them (orchestrator.agent_env).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

from flotilla.domain.events import AgentEvent, EventKind, Usage
from flotilla.executors import common, session_files
from flotilla.executors.base import Command, LaunchSpec, SessionPlace, register
from flotilla.executors.hooks import write_claude_settings

DEFAULT_PERMISSION_MODE = "acceptEdits"  # works as root; bypassPermissions needs IS_SANDBOX=1
MCP_CONFIG_FILE = "claude-mcp.json"
MCP_SERVER_NAME = "flotilla"
# What `fleet mcp` reads to reach the daemon as this agent; expanded by Claude at start.
MCP_ENV_VARS = (
    "FLOTILLA_URL",
    "FLOTILLA_TOKEN",
    "FLOTILLA_SOCKET",
    "FLOTILLA_HOME",
    "FLOTILLA_WORKER",
    "FLOTILLA_WORKER_ID",
    "FLOTILLA_DEPTH",
    "FLOTILLA_PROJECT",
    "FLOTILLA_TEAM",
    "FLOTILLA_ROLE",
)
_ERROR_KINDS = {
    "rate_limit": EventKind.RATE_LIMITED,
    "authentication_failed": EventKind.AUTH_FAILED,
}


@register
class ClaudeExecutor:
    kind: ClassVar[str] = "claude"
    default_binary: ClassVar[str] = "claude"
    install_hint: ClassVar[str] = "npm install -g @anthropic-ai/claude-code"
    supports_resume: ClassVar[bool] = True
    new_session_id: ClassVar[bool] = True
    session_cumulative_usage: ClassVar[bool] = False

    def _common_flags(self, spec: LaunchSpec) -> tuple[list[str], dict[str, str]]:
        mode = spec.settings.permission_mode or DEFAULT_PERMISSION_MODE
        env = dict(spec.settings.env)
        if mode == "bypassPermissions":
            env["IS_SANDBOX"] = "1"  # else claude refuses to run as root
        flags = ["--permission-mode", mode]
        if spec.resume:
            flags += ["--resume", common.require_session(spec, self.kind)]
        elif spec.session_id:
            flags += ["--session-id", spec.session_id]
        if spec.effective_model:
            flags += ["--model", spec.effective_model]
        if spec.settings.mcp:
            flags += ["--mcp-config", str(write_mcp_config(spec.run_dir))]
        flags += list(spec.settings.extra_flags)
        return flags, env

    def headless(self, spec: LaunchSpec) -> Command:
        flags, env = self._common_flags(spec)
        argv = [common.binary(spec, self.default_binary), "-p", common.prompt_arg(spec)]
        argv += ["--output-format", "stream-json", "--verbose", *flags]
        return Command(argv=argv, env=env, cwd=spec.worktree)

    def interactive(self, spec: LaunchSpec) -> Command:
        flags, env = self._common_flags(spec)
        settings = write_claude_settings(spec.run_dir)
        argv = [common.binary(spec, self.default_binary), "--settings", str(settings), *flags]
        return Command(argv=[*argv, common.prompt_arg(spec)], env=env, cwd=spec.worktree)

    def parser(self, spec: LaunchSpec | None = None) -> ClaudeParser:
        return ClaudeParser()

    def carry_session(self, session_id: str, source: SessionPlace, target: SessionPlace) -> bool:
        """Claude files sessions by working folder. From another folder, `--resume` finds a
        session only in a live worktree of the same repository, and appends to that
        worktree's transcript; once that worktree is removed: "No conversation found". So a
        copy goes under the target folder's key (session_files), which the resume prefers."""
        return session_files.carry_claude(session_id, source, target)


def mcp_config(python: str = sys.executable) -> dict[str, Any]:
    """The `--mcp-config` document: `fleet mcp` over stdio, run by this interpreter (the
    agent's PATH may not have `fleet`); -P so a `flotilla` folder in the worktree does
    not shadow the installed package."""
    server = {
        "type": "stdio",
        "command": python,
        "args": ["-P", "-m", "flotilla.cli", "mcp"],
        "env": {name: "${" + name + ":-}" for name in MCP_ENV_VARS},
    }
    return {"mcpServers": {MCP_SERVER_NAME: server}}


def write_mcp_config(run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / MCP_CONFIG_FILE
    path.write_text(json.dumps(mcp_config(), indent=2) + "\n", encoding="utf-8")
    return path


class ClaudeParser:
    """stream-json lines to events. See AGENT-CLIS.md for the shapes."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.saw_result = False
        self._tool_names: dict[str, str] = {}

    def feed(self, line: str) -> list[AgentEvent]:
        raw = common.json_object(line, "executors.claude_bad_json")
        if raw is None:
            return common.text_event(line)
        kind = raw.get("type")
        if kind == "system":
            return self._system(raw)
        if kind == "assistant":
            return self._assistant(raw)
        if kind == "user":
            return self._user(raw)
        if kind == "result":
            return self._result(raw)
        return []  # stream_event and future types carry nothing we track

    def _system(self, raw: dict[str, Any]) -> list[AgentEvent]:
        subtype = raw.get("subtype")
        if subtype == "init":
            self.session_id = common.as_str(raw.get("session_id")) or self.session_id
            data: dict[str, Any] = {
                k: raw[k] for k in ("model", "cwd", "permissionMode") if k in raw
            }
            return [AgentEvent(EventKind.SESSION_STARTED, session_id=self.session_id, data=data)]
        if subtype == "api_retry":
            error = raw.get("error")
            delay = raw.get("retry_delay_ms")
            retry_after = delay / 1000 if isinstance(delay, int | float) else None
            text = f"API retry {raw.get('attempt')}/{raw.get('max_retries')}: {error}"
            if error == "rate_limit" or raw.get("error_status") == 429:
                return [AgentEvent(EventKind.RATE_LIMITED, text=text, retry_after=retry_after)]
            if error == "authentication_failed" or raw.get("error_status") in (401, 403):
                return [AgentEvent(EventKind.AUTH_FAILED, text=text)]
        return []  # other retries are the CLI's business until they end in a result

    def _assistant(self, raw: dict[str, Any]) -> list[AgentEvent]:
        message = common.as_dict(raw.get("message"))
        blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
        error = raw.get("error") or message.get("error")
        if error:
            text = "\n".join(common.as_str(b.get("text")) for b in blocks).strip() or str(error)
            return [AgentEvent(_ERROR_KINDS.get(str(error), EventKind.ERROR), text=text)]
        events: list[AgentEvent] = []
        for block in blocks:
            if block.get("type") == "text" and common.as_str(block.get("text")):
                events.append(AgentEvent(EventKind.TEXT, text=block["text"]))
            elif block.get("type") == "tool_use":
                name = common.as_str(block.get("name")) or "tool"
                self._tool_names[common.as_str(block.get("id"))] = name
                events.append(
                    AgentEvent(
                        EventKind.TOOL_CALL, tool=name, data=common.as_dict(block.get("input"))
                    )
                )
        return events

    def _user(self, raw: dict[str, Any]) -> list[AgentEvent]:
        content = common.as_dict(raw.get("message")).get("content")
        events: list[AgentEvent] = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            tool_id = common.as_str(block.get("tool_use_id"))
            events.append(
                AgentEvent(
                    EventKind.TOOL_RESULT,
                    tool=self._tool_names.get(tool_id, tool_id or None),
                    text=_result_text(block.get("content")),
                    is_error=bool(block.get("is_error")),
                )
            )
        return events

    def _result(self, raw: dict[str, Any]) -> list[AgentEvent]:
        self.saw_result = True
        self.session_id = common.as_str(raw.get("session_id")) or self.session_id
        usage = _usage(raw)
        subtype = common.as_str(raw.get("subtype"))
        is_error = bool(raw.get("is_error")) or (bool(subtype) and subtype != "success")
        text = common.as_str(raw.get("result"))
        data: dict[str, Any] = {"subtype": subtype, "num_turns": raw.get("num_turns")}
        data["permission_denials"] = raw.get("permission_denials") or []
        status = raw.get("api_error_status")
        if status is not None:
            data["api_error_status"] = status
        events = [AgentEvent(EventKind.USAGE, usage=usage, data={"final": True})]
        if status == 429:
            events.append(AgentEvent(EventKind.RATE_LIMITED, text=text or "API error 429"))
        elif status in (401, 403):
            events.append(AgentEvent(EventKind.AUTH_FAILED, text=text or f"API error {status}"))
        events.append(
            AgentEvent(
                EventKind.RESULT,
                text=text,
                is_error=is_error,
                usage=usage,
                session_id=self.session_id,
                data=data,
            )
        )
        return events

    def finish(self, exit_code: int, stderr_tail: str) -> list[AgentEvent]:
        if self.saw_result:
            return []
        return common.missing_result(exit_code, stderr_tail)


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [common.as_str(c.get("text")) for c in content if isinstance(c, dict)]
        return "\n".join(p for p in parts if p)
    return ""


def _usage(raw: dict[str, Any]) -> Usage:
    usage = common.as_dict(raw.get("usage"))
    cache_read = common.as_int(usage.get("cache_read_input_tokens"))
    cache_write = common.as_int(usage.get("cache_creation_input_tokens"))
    by_model = common.as_dict(raw.get("modelUsage"))
    model = None
    if by_model:  # the model that cost the most did the work
        model = max(by_model, key=lambda m: common.as_dict(by_model[m]).get("costUSD") or 0)
    cost = raw.get("total_cost_usd")
    return Usage(
        input_tokens=common.as_int(usage.get("input_tokens")) + cache_read + cache_write,
        output_tokens=common.as_int(usage.get("output_tokens")),
        cached_input_tokens=cache_read,
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        model=model,
    )
