"""Stage and workflow lifecycles: guarded transitions, fan-out expansion, budget."""

from __future__ import annotations

import itertools

import pytest

from flotilla.domain.errors import IllegalTransition, UsageError
from flotilla.domain.workflow import (
    STAGE_TRANSITIONS,
    StageSpec,
    StageState,
    WorkerPlan,
    WorkflowInvalid,
    WorkflowSpec,
    WorkflowState,
    check_stage_transition,
    check_workflow_transition,
    stage_name_problem,
)


def test_every_stage_state_has_a_transition_entry() -> None:
    assert set(STAGE_TRANSITIONS) == set(StageState)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(StageState, StageState)))
def test_stage_transition_is_guarded(current: StageState, target: StageState) -> None:
    if target in STAGE_TRANSITIONS[current]:
        assert check_stage_transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition, match=f"a {current} stage cannot become {target}"):
            check_stage_transition(current, target)


def test_a_succeeded_stage_never_runs_again() -> None:
    for target in StageState:
        with pytest.raises(IllegalTransition):
            check_stage_transition(StageState.SUCCEEDED, target)


def test_failed_stages_can_be_resumed_but_not_started_directly() -> None:
    assert check_stage_transition(StageState.FAILED, StageState.PENDING) is StageState.PENDING
    with pytest.raises(IllegalTransition):
        check_stage_transition(StageState.FAILED, StageState.RUNNING)


def test_terminal_stage_states() -> None:
    terminal = {s for s in StageState if s.is_terminal}
    assert terminal == {
        StageState.SUCCEEDED,
        StageState.FAILED,
        StageState.SKIPPED,
        StageState.CANCELLED,
    }


def test_workflow_transitions() -> None:
    assert check_workflow_transition(WorkflowState.PENDING, WorkflowState.RUNNING)
    assert check_workflow_transition(WorkflowState.FAILED, WorkflowState.RUNNING)
    with pytest.raises(IllegalTransition):
        check_workflow_transition(WorkflowState.SUCCEEDED, WorkflowState.RUNNING)
    with pytest.raises(IllegalTransition):
        check_workflow_transition(WorkflowState.PENDING, WorkflowState.SUCCEEDED)
    assert not WorkflowState.RUNNING.is_terminal and WorkflowState.CANCELLED.is_terminal


def test_illegal_transition_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        check_workflow_transition(WorkflowState.SUCCEEDED, WorkflowState.FAILED)


def test_fan_out_count_per_agent_kind() -> None:
    stage = StageSpec("c", agent="claude", agents=("claude", "codex"), prompt="p", count=2)
    assert stage.workers() == (
        WorkerPlan(0, "claude"),
        WorkerPlan(1, "claude"),
        WorkerPlan(2, "codex"),
        WorkerPlan(3, "codex"),
    )
    assert stage.worker_count == 4


def test_fan_out_over_parts_cycles_the_agents() -> None:
    stage = StageSpec("w", agent="a", agents=("a", "b"), prompt="p", parts=("x", "y", "z"))
    assert [(w.agent, w.part) for w in stage.workers()] == [("a", "x"), ("b", "y"), ("a", "z")]


def test_single_worker_by_default() -> None:
    assert StageSpec("s", agent="claude", prompt="p").workers() == (WorkerPlan(0, "claude"),)


@pytest.mark.parametrize("name", ["implement", "a", "fix-2", "run_tests"])
def test_good_stage_names(name: str) -> None:
    assert stage_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "a.b", "1st", "x-", "and", "not", "a b", "x" * 41])
def test_bad_stage_names(name: str) -> None:
    assert stage_name_problem(name)


def test_budget() -> None:
    spec = WorkflowSpec("w", (), max_cost_usd=5.0, max_tokens=1000)
    assert spec.budget_reached(4.99, 999) is None
    assert "max_cost_usd" in (spec.budget_reached(5.0, 0) or "")
    assert "max_tokens" in (spec.budget_reached(0.0, 1000) or "")
    assert WorkflowSpec("w", ()).budget_reached(1e9, 10**12) is None


def test_stage_lookup_names_the_choices() -> None:
    spec = WorkflowSpec("w", (StageSpec("a", agent="x", prompt="p"),))
    assert spec.stage("a").name == "a"
    with pytest.raises(UsageError, match="no stage 'b': its stages are a"):
        spec.stage("b")


def test_workflow_invalid_lists_every_problem() -> None:
    err = WorkflowInvalid("w", ["one", "two"])
    assert err.problems == ["one", "two"]
    assert str(err) == "workflow 'w' has 2 problems: one; two"
    assert err.exit_code == 2
