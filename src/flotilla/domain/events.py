"""Normalized agent events: what every executor's parser turns output lines into."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    SESSION_STARTED = "session_started"
    TEXT = "text"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    USAGE = "usage"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    WAITING = "waiting"  # the agent waits for input or a permission
    ERROR = "error"
    RESULT = "result"  # the final result of one turn


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float | None = None  # None: the CLI gave no figure, compute it from prices
    model: str | None = None

    def __add__(self, other: Usage) -> Usage:
        cost = None
        if self.cost_usd is not None or other.cost_usd is not None:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            cost,
            other.model or self.model,
        )


@dataclass(frozen=True)
class AgentEvent:
    """One normalized event. Only the fields that fit the kind are set.

    - SESSION_STARTED: session_id (and model in data)
    - TEXT: text (assistant prose)
    - TOOL_CALL: tool, data (the tool's input)
    - TOOL_RESULT: tool (or tool id), text (output), is_error
    - USAGE: usage (cumulative totals for the turn when `final`, else an increment)
    - RATE_LIMITED: text, retry_after (seconds) if the CLI said
    - AUTH_FAILED, ERROR: text
    - RESULT: text (the agent's final message), is_error, usage, session_id,
      data may hold subtype/num_turns/permission_denials/next_steps
    """

    kind: EventKind
    text: str = ""
    session_id: str | None = None
    tool: str | None = None
    is_error: bool = False
    usage: Usage | None = None
    retry_after: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value}
        if self.text:
            out["text"] = self.text
        if self.session_id:
            out["session_id"] = self.session_id
        if self.tool:
            out["tool"] = self.tool
        if self.is_error:
            out["is_error"] = True
        if self.usage is not None:
            out["usage"] = {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cached_input_tokens": self.usage.cached_input_tokens,
                "cost_usd": self.usage.cost_usd,
                "model": self.usage.model,
            }
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.data:
            out["data"] = self.data
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AgentEvent:
        usage = raw.get("usage")
        return cls(
            kind=EventKind(raw["kind"]),
            text=raw.get("text", ""),
            session_id=raw.get("session_id"),
            tool=raw.get("tool"),
            is_error=bool(raw.get("is_error", False)),
            usage=Usage(**usage) if usage else None,
            retry_after=raw.get("retry_after"),
            data=raw.get("data", {}),
        )
