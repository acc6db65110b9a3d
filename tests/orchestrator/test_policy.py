"""Pure decisions: backoff delays and how a finished turn is judged."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from flotilla.domain.events import AgentEvent, EventKind
from flotilla.domain.states import Outcome
from flotilla.orchestrator.policy import RetryPolicy, backoff_delay, judge_turn


@given(
    st.integers(min_value=1, max_value=30),
    st.floats(min_value=0, max_value=1000) | st.none(),
    st.integers(),
)
def test_backoff_is_bounded_and_honours_retry_after(
    retry: int, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy(max_retries=5, base_delay_s=2.0, max_delay_s=60.0, jitter=0.25)
    delay = backoff_delay(retry, policy, retry_after, random.Random(seed))
    assert 0 <= delay <= max(60.0 * 1.25, retry_after or 0)
    if retry_after is not None:
        assert delay >= retry_after


def test_backoff_grows_exponentially_without_jitter() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=100.0, jitter=0.0)
    assert [backoff_delay(n, policy) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(20, policy) == 100.0


def ev(kind: EventKind, **kw: object) -> AgentEvent:
    return AgentEvent(kind, **kw)  # type: ignore[arg-type]


def test_success_carries_summary_and_next_steps() -> None:
    verdict = judge_turn(
        [
            ev(EventKind.TEXT, text="hi"),
            ev(EventKind.RESULT, text="done", data={"next_steps": ["docs"]}),
        ],
        0,
    )
    assert verdict.outcome is Outcome.SUCCESS
    assert verdict.summary == "done" and verdict.next_steps == ("docs",)


def test_rate_limit_then_failure_is_retryable_but_rate_limit_then_success_is_not() -> None:
    limited = ev(EventKind.RATE_LIMITED, text="429", retry_after=3.0)
    failed = judge_turn([limited, ev(EventKind.RESULT, is_error=True)], 1)
    assert failed.outcome is Outcome.RATE_LIMITED and failed.retryable
    assert failed.retry_after == 3.0
    recovered = judge_turn([limited, ev(EventKind.RESULT, text="ok")], 0)
    assert recovered.outcome is Outcome.SUCCESS


def test_auth_failure_wins_and_is_not_retryable() -> None:
    verdict = judge_turn([ev(EventKind.RATE_LIMITED), ev(EventKind.AUTH_FAILED, text="401")], 1)
    assert verdict.outcome is Outcome.AUTH_FAILED and not verdict.retryable


def test_non_zero_exit_without_events_is_an_error_naming_the_code() -> None:
    verdict = judge_turn([], 3)
    assert verdict.outcome is Outcome.ERROR and "3" in (verdict.error or "")


def test_blocked_agent_is_reported_as_blocked() -> None:
    verdict = judge_turn([ev(EventKind.RESULT, text="can't", data={"blocked": True})], 0)
    assert verdict.outcome is Outcome.BLOCKED
