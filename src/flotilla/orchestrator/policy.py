"""Pure decisions of the supervisor: retry backoff, and what a finished turn amounts to."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from flotilla.domain.events import AgentEvent, EventKind
from flotilla.domain.states import Outcome


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay_s: float = 5.0
    max_delay_s: float = 300.0
    jitter: float = 0.2  # +- this fraction of the delay


def backoff_delay(
    retry_number: int,
    policy: RetryPolicy,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry `retry_number` (1-based).

    Exponential with jitter; a Retry-After from the server is a floor, never cut short.
    """
    rng = rng or random.Random()
    delay = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** max(0, retry_number - 1))
    delay *= 1 + rng.uniform(-policy.jitter, policy.jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, delay)


@dataclass(frozen=True)
class TurnVerdict:
    """How one agent turn ended, judged from its events and exit code."""

    outcome: Outcome
    summary: str = ""
    error: str | None = None
    retry_after: float | None = None
    blocked: bool = False
    next_steps: tuple[str, ...] = ()

    @property
    def retryable(self) -> bool:
        return self.outcome is Outcome.RATE_LIMITED


def judge_turn(events: Iterable[AgentEvent], exit_code: int) -> TurnVerdict:
    """Classify a finished turn. Auth failures are never retried; rate limits are."""
    rate_limited: AgentEvent | None = None
    auth_failed: AgentEvent | None = None
    errors: list[str] = []
    result: AgentEvent | None = None
    last_text = ""
    for event in events:
        if event.kind is EventKind.RATE_LIMITED:
            rate_limited = event
        elif event.kind is EventKind.AUTH_FAILED:
            auth_failed = event
        elif event.kind is EventKind.ERROR:
            errors.append(event.text)
        elif event.kind is EventKind.RESULT:
            result = event
        elif event.kind is EventKind.TEXT and event.text.strip():
            last_text = event.text
    summary = result.text if result and result.text else last_text
    failed = exit_code != 0 or (result is not None and result.is_error)
    next_steps = tuple(str(s) for s in (result.data.get("next_steps", []) if result else []))
    if auth_failed is not None and failed:
        return TurnVerdict(
            Outcome.AUTH_FAILED, summary, auth_failed.text or "authentication failed"
        )
    if rate_limited is not None and failed:
        return TurnVerdict(
            Outcome.RATE_LIMITED,
            summary,
            rate_limited.text or "rate limited",
            retry_after=rate_limited.retry_after,
        )
    if failed:
        reason = errors[-1] if errors else (result.text if result and result.is_error else "")
        return TurnVerdict(Outcome.ERROR, summary, reason or f"agent exited with code {exit_code}")
    blocked = bool(result and result.data.get("blocked"))
    if blocked:
        return TurnVerdict(Outcome.BLOCKED, summary, blocked=True, next_steps=next_steps)
    return TurnVerdict(Outcome.SUCCESS, summary, next_steps=next_steps)
