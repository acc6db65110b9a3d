"""`when` conditions: a safe little language, parsed at validation, evaluated on outcomes."""

from __future__ import annotations

import pytest

from flotilla.domain.conditions import ConditionContext, ConditionError, parse_condition
from flotilla.domain.workflow import StageState

S = StageState


def ctx(states: dict[str, StageState], outcomes: dict[str, str] | None = None) -> ConditionContext:
    return ConditionContext(states, outcomes or {}, frozenset(states))


@pytest.mark.parametrize(
    ("text", "states", "expected"),
    [
        ("test.failed", {"test": S.FAILED}, True),
        ("test.failed", {"test": S.SUCCEEDED}, False),
        ("test.succeeded", {"test": S.SUCCEEDED}, True),
        ("test.skipped", {"test": S.SKIPPED}, True),
        ("test.cancelled", {"test": S.CANCELLED}, True),
        ("test.done", {"test": S.FAILED}, True),
        ("test.done", {"test": S.RUNNING}, False),
        ("always", {"test": S.FAILED}, True),
        ("never", {"test": S.SUCCEEDED}, False),
        ("any_failed", {"a": S.SUCCEEDED, "b": S.FAILED}, True),
        ("any_failed", {"a": S.SUCCEEDED, "b": S.SKIPPED}, False),
        ("all_succeeded", {"a": S.SUCCEEDED, "b": S.SUCCEEDED}, True),
        ("all_succeeded", {"a": S.SUCCEEDED, "b": S.SKIPPED}, False),
        ("not a.failed", {"a": S.SUCCEEDED}, True),
        ("a.failed or b.failed", {"a": S.SUCCEEDED, "b": S.FAILED}, True),
        ("a.failed and b.failed", {"a": S.SUCCEEDED, "b": S.FAILED}, False),
        ("not (a.failed or b.failed)", {"a": S.SUCCEEDED, "b": S.SUCCEEDED}, True),
        # and binds tighter than or
        ("a.failed or b.failed and c.failed", {"a": S.FAILED, "b": S.SUCCEEDED}, True),
        ("a.state == 'skipped'", {"a": S.SKIPPED}, True),
        ("a.state != 'skipped'", {"a": S.SKIPPED}, False),
        ("run-tests.failed", {"run-tests": S.FAILED}, True),
    ],
)
def test_evaluate(text: str, states: dict[str, StageState], expected: bool) -> None:
    assert parse_condition(text).evaluate(ctx(states)) is expected


def test_outcome_comparison() -> None:
    cond = parse_condition("review.outcome == 'tests_failed'")
    assert cond.evaluate(ctx({"review": S.FAILED}, {"review": "tests_failed"}))
    assert not cond.evaluate(ctx({"review": S.SUCCEEDED}, {"review": "success"}))
    assert not cond.evaluate(ctx({"review": S.SKIPPED}))  # no outcome at all
    assert parse_condition('review.outcome != "success"').evaluate(
        ctx({"review": S.FAILED}, {"review": "error"})
    )


def test_referenced_stages() -> None:
    cond = parse_condition("a.failed or (b.outcome == 'success' and not c.done) or always")
    assert cond.stages() == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("test", "expected '.' after stage 'test'"),
        ("test.broken", "one of succeeded, failed"),
        ("test.failed and", "found the end"),
        ("(test.failed", "expected ')'"),
        ("test.outcome", "'==' or '!='"),
        ("test.outcome == success", "a quoted value"),
        ("test.outcome == 'sucess'", "outcome 'sucess' is not one of success"),
        ("test.state == 'done'", "state 'done' is not one of"),
        ("test.failed; rm -rf /", "unexpected character at column 12"),
        ("__import__('os')", "expected '.'"),
        ("a.failed b.failed", "'and', 'or' or the end"),
        ("and", "expected a condition"),
    ],
)
def test_bad_conditions(text: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_condition(text)


def test_pending_stage_is_neither_failed_nor_done() -> None:
    cond = parse_condition("x.failed or x.done")
    assert not cond.evaluate(ConditionContext({}, {}, frozenset({"x"})))
