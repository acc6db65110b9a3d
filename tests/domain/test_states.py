"""The worker state machine: legal moves only, terminal states stay put."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla.domain.errors import IllegalTransition
from flotilla.domain.states import (
    LEGAL_TRANSITIONS,
    Outcome,
    WorkerState,
    can_transition,
    check_transition,
)

states = st.sampled_from(list(WorkerState))


@given(st.lists(states, max_size=30))
def test_walks_follow_the_table(path: list[WorkerState]) -> None:
    current = WorkerState.QUEUED
    for target in path:
        if target in LEGAL_TRANSITIONS[current]:
            current = check_transition(current, target)
        else:
            with pytest.raises(IllegalTransition):
                check_transition(current, target)


def test_cancelled_is_final_and_nothing_moves_to_itself() -> None:
    assert not LEGAL_TRANSITIONS[WorkerState.CANCELLED]
    for state in WorkerState:
        assert not can_transition(state, state)


def test_every_state_is_reachable_from_queued() -> None:
    seen, frontier = {WorkerState.QUEUED}, [WorkerState.QUEUED]
    while frontier:
        for nxt in LEGAL_TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(WorkerState)


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        (Outcome.SUCCESS, WorkerState.SUCCEEDED),
        (Outcome.NO_CHANGES, WorkerState.SUCCEEDED),
        (Outcome.TESTS_FAILED, WorkerState.FAILED),
        (Outcome.RATE_LIMITED, WorkerState.FAILED),
        (Outcome.CANCELLED, WorkerState.CANCELLED),
    ],
)
def test_outcomes_map_to_final_states(outcome: Outcome, state: WorkerState) -> None:
    assert outcome.final_state is state
