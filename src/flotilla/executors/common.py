"""Small pieces every adapter shares: argv hygiene, failure classification, end of run.

Conventions all parsers follow, so the orchestrator needs no per-kind logic:

- A failure the CLI (or its exit code, or its stderr) identifies as a rate limit
  becomes RATE_LIMITED, an authentication or credentials problem AUTH_FAILED,
  anything else ERROR.
- Every run yields exactly one RESULT: the CLI's own, or one made up by
  `finish()` (is_error=True, text=the stderr tail) when the CLI died without one.
- A run yields at most one USAGE event: the turn's totals, data {"final": True}.
  (Per-message usage the CLIs print along the way is not final and not emitted.)
"""

from __future__ import annotations

import json
import re
from typing import Any

from flotilla import counters
from flotilla.domain.errors import UsageError
from flotilla.domain.events import AgentEvent, EventKind
from flotilla.executors.base import LaunchSpec

# Exit codes from sysexits.h that any command (shell and scripted agents) may use.
EXIT_TEMPFAIL = 75  # "try again later": treated as a rate limit
EXIT_NOPERM = 77  # "permission denied": treated as an authentication failure

_RATE_LIMIT = re.compile(
    r"\b429\b|too many requests|rate[ _-]?limit|resource[ _]exhausted|quota exceeded",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"\b401\b|\b403\b|unauthori[sz]ed|authentication[ _]failed|invalid api key|"
    r"invalid x-api-key|missing environment variable|not logged in|/login|"
    r"invalid auth method|api key not valid",
    re.IGNORECASE,
)


def classify(text: str) -> EventKind:
    """RATE_LIMITED, AUTH_FAILED or ERROR for an error message."""
    if _RATE_LIMIT.search(text):
        return EventKind.RATE_LIMITED
    if _AUTH.search(text):
        return EventKind.AUTH_FAILED
    return EventKind.ERROR


def failure(text: str, retry_after: float | None = None) -> AgentEvent:
    kind = classify(text)
    return AgentEvent(
        kind, text=text, retry_after=retry_after if kind is EventKind.RATE_LIMITED else None
    )


def tail(text: str, lines: int = 20) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def missing_result(
    exit_code: int, stderr_tail: str, kind: EventKind | None = None
) -> list[AgentEvent]:
    """The failure event and the stand-in RESULT for a run that ended without a result."""
    text = tail(stderr_tail) or f"the agent exited with code {exit_code} without a result"
    event = AgentEvent(kind, text=text) if kind is not None else failure(text)
    result = AgentEvent(
        EventKind.RESULT,
        text=text,
        is_error=True,
        data={"exit_code": exit_code, "synthesized": True},
    )
    return [event, result]


def text_event(line: str) -> list[AgentEvent]:
    """A non-JSON output line: kept as TEXT unless blank."""
    return [AgentEvent(EventKind.TEXT, text=line)] if line.strip() else []


def json_object(line: str, counter: str) -> dict[str, Any] | None:
    """The line as a JSON object, or None (counted) when it is something else."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        raw = json.loads(stripped)
    except ValueError:
        counters.count(counter)
        return None
    return raw if isinstance(raw, dict) else None


def prompt_arg(spec: LaunchSpec) -> str:
    """The prompt as one argv element that no CLI can mistake for a flag."""
    if not spec.prompt.strip():
        raise UsageError("the prompt is empty: give the agent something to do")
    # A leading space keeps "-x ..." from being parsed as an option; models ignore it.
    return f" {spec.prompt}" if spec.prompt.startswith("-") else spec.prompt


def binary(spec: LaunchSpec, default: str) -> str:
    return spec.settings.binary or default


def require_session(spec: LaunchSpec, kind: str) -> str:
    if not spec.session_id:
        raise UsageError(f"cannot resume a {kind} session without its id: pass the session id")
    return spec.session_id


def as_int(value: Any) -> int:
    """A token count from JSON; anything unusable counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""
