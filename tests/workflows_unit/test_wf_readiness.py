"""Readiness: which stages start, which are skipped, fail-fast, and the workflow's state."""

from __future__ import annotations

from typing import Any

from flotilla.domain import dag
from flotilla.domain.workflow import StageSpec, StageState, WorkflowSpec, WorkflowState

S = StageState


def st(name: str, *deps: str, **kw: Any) -> StageSpec:
    return StageSpec(name=name, agent="claude", prompt="p", depends_on=deps, **kw)


def wf(*stages: StageSpec, **kw: Any) -> WorkflowSpec:
    return WorkflowSpec(name="w", stages=stages, **kw)


DIAMOND = wf(st("a"), st("b", "a"), st("c", "a"), st("d", "b", "c"))


def test_roots_start_first() -> None:
    assert dag.ready_stages(DIAMOND, {}, {}) == ["a"]
    assert dag.plan(DIAMOND, {"a": S.RUNNING}, {}) == dag.Readiness()


def test_independent_stages_start_together() -> None:
    states = {"a": S.SUCCEEDED}
    assert dag.ready_stages(DIAMOND, states, {}) == ["b", "c"]
    assert dag.ready_stages(DIAMOND, {**states, "b": S.SUCCEEDED, "c": S.RUNNING}, {}) == []
    done = {**states, "b": S.SUCCEEDED, "c": S.SUCCEEDED}
    assert dag.ready_stages(DIAMOND, done, {}) == ["d"]


def test_ready_and_running_stages_are_not_started_again() -> None:
    states = {"a": S.SUCCEEDED, "b": S.READY, "c": S.RUNNING}
    assert dag.plan(DIAMOND, states, {}) == dag.Readiness()


def test_a_failure_skips_its_dependants_in_one_call() -> None:
    readiness = dag.plan(DIAMOND, {"a": S.FAILED}, {})
    assert readiness == dag.Readiness(skip=("b", "c", "d"))


def test_when_lets_a_stage_run_after_a_failure() -> None:
    spec = wf(st("impl"), st("test", "impl"), st("fix", "test", when="test.failed"))
    assert dag.plan(spec, {"impl": S.SUCCEEDED, "test": S.FAILED}, {}).start == ("fix",)
    assert dag.plan(spec, {"impl": S.SUCCEEDED, "test": S.SUCCEEDED}, {}).skip == ("fix",)


def test_when_on_outcome() -> None:
    spec = wf(st("review"), st("fix", "review", when="review.outcome == 'tests_failed'"))
    assert dag.ready_stages(spec, {"review": S.FAILED}, {"review": "tests_failed"}) == ["fix"]
    assert dag.plan(spec, {"review": S.FAILED}, {"review": "error"}).skip == ("fix",)


def test_when_waits_for_every_upstream_stage() -> None:
    # d's condition looks at a, an ancestor through c; c is done but a might not be
    spec = wf(st("a"), st("c", when="always"), st("d", "c", when="any_failed"))
    assert dag.plan(spec, {"c": S.SUCCEEDED, "a": S.RUNNING}, {}).start == ()


def test_always_runs_even_after_a_skip() -> None:
    spec = wf(st("a"), st("b", "a"), st("report", "b", when="always"))
    assert dag.plan(spec, {"a": S.FAILED}, {}) == dag.Readiness(start=("report",), skip=("b",))


def test_fail_fast_cancels_everything_not_terminal() -> None:
    spec = wf(st("a"), st("b"), st("c"), st("d", "a"), fail_fast=True)
    states = {"a": S.SUCCEEDED, "b": S.FAILED, "c": S.RUNNING}
    assert dag.plan(spec, states, {}) == dag.Readiness(cancel=("c", "d"))


def test_without_fail_fast_other_branches_go_on() -> None:
    spec = wf(st("a"), st("b"), st("c", "b"), st("d", "a"))
    assert dag.plan(spec, {"a": S.SUCCEEDED, "b": S.FAILED}, {}) == dag.Readiness(
        start=("d",), skip=("c",)
    )


def test_topological_order_keeps_spec_order_for_ties() -> None:
    spec = wf(st("z"), st("y", "x"), st("x"), st("w", "z"))
    assert dag.topological_order(spec) == ["z", "x", "y", "w"]


def test_ancestors_and_descendants() -> None:
    assert dag.ancestors(DIAMOND, "d") == {"a", "b", "c"}
    assert dag.descendants(DIAMOND, "b") == {"d"}


def test_workflow_state() -> None:
    assert dag.workflow_state(DIAMOND, {}, {}) is WorkflowState.PENDING
    assert dag.workflow_state(DIAMOND, {"a": S.RUNNING}, {}) is WorkflowState.RUNNING
    done = dict.fromkeys("abcd", S.SUCCEEDED)
    assert dag.workflow_state(DIAMOND, done, {}) is WorkflowState.SUCCEEDED
    failed = {"a": S.FAILED, "b": S.SKIPPED, "c": S.SKIPPED, "d": S.SKIPPED}
    assert dag.workflow_state(DIAMOND, failed, {}) is WorkflowState.FAILED
    cancelled = {**done, "d": S.CANCELLED}
    assert dag.workflow_state(DIAMOND, cancelled, {}) is WorkflowState.CANCELLED


def test_a_handled_failure_does_not_fail_the_workflow() -> None:
    spec = wf(st("test"), st("fix", "test", when="test.failed"))
    handled = {"test": S.FAILED, "fix": S.SUCCEEDED}
    assert dag.workflow_state(spec, handled, {}) is WorkflowState.SUCCEEDED
    unhandled = {"test": S.FAILED, "fix": S.FAILED}
    assert dag.workflow_state(spec, unhandled, {}) is WorkflowState.FAILED


def test_an_always_stage_does_not_hide_a_failure() -> None:
    spec = wf(st("build"), st("report", "build", when="always"))
    states = {"build": S.FAILED, "report": S.SUCCEEDED}
    assert dag.workflow_state(spec, states, {}) is WorkflowState.FAILED


def test_skips_alone_are_a_success() -> None:
    spec = wf(st("test"), st("fix", "test", when="test.failed"))
    states = {"test": S.SUCCEEDED, "fix": S.SKIPPED}
    assert dag.workflow_state(spec, states, {}) is WorkflowState.SUCCEEDED


def test_resume_restarts_failed_cancelled_and_their_skipped_dependants() -> None:
    spec = wf(
        st("a"),
        st("b", "a"),
        st("c", "b"),
        st("test"),
        st("fix", "test", when="test.failed"),
        st("x"),
        st("y", "x", when="never"),
    )
    states = {
        "a": S.FAILED,
        "b": S.SKIPPED,
        "c": S.SKIPPED,
        "test": S.FAILED,  # handled by fix: stays
        "fix": S.SUCCEEDED,
        "x": S.CANCELLED,
        "y": S.SKIPPED,
    }
    assert dag.resume_stages(spec, states, {}) == ("a", "b", "c", "x", "y")
    for name in ("a", "b", "c", "x", "y"):
        states[name] = S.PENDING
    assert dag.plan(spec, states, {}).start == ("a", "x")
