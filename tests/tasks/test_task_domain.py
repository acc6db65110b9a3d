"""The pure task rules: transitions, holders, readiness, cycles, capability, pick order."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.domain.errors import IllegalTransition, UsageError
from flotilla.domain.tasks import (
    MAX_LEASE_S,
    TASK_TRANSITIONS,
    NotHolder,
    Readiness,
    Task,
    TaskState,
    can_task_transition,
    capability_matches,
    check_holder,
    check_priority,
    check_task_transition,
    check_title,
    claimable,
    find_cycle,
    lease_deadline,
    lease_expired,
    normalize_dependencies,
    normalize_labels,
    pick_key,
    pick_next,
    readiness,
    to_task_state,
)

S = TaskState
states = st.sampled_from(list(TaskState))


def test_transition_table_is_what_the_lifecycle_needs() -> None:
    assert can_task_transition(S.QUEUED, S.CLAIMED)
    assert can_task_transition(S.CLAIMED, S.QUEUED)  # lease expired, released
    assert can_task_transition(S.CLAIMED, S.DONE)
    assert can_task_transition(S.CLAIMED, S.FAILED)
    assert can_task_transition(S.FAILED, S.QUEUED)  # re-queued
    assert not can_task_transition(S.QUEUED, S.DONE)  # finishing needs a holder
    assert TASK_TRANSITIONS[S.DONE] == frozenset()
    assert TASK_TRANSITIONS[S.CANCELLED] == frozenset()
    assert {s for s in TaskState if s.is_terminal} == {S.DONE, S.CANCELLED}


@given(st.lists(states, max_size=20))
def test_walks_follow_the_table(moves: list[TaskState]) -> None:
    """Any sequence of requested moves: each one is made iff the table allows it."""
    current = S.QUEUED
    for target in moves:
        if target in TASK_TRANSITIONS[current]:
            assert check_task_transition("t-1", current, target) is target
            current = target
        else:
            with pytest.raises(IllegalTransition, match=f"task t-1 is {current}"):
                check_task_transition("t-1", current, target)
    # Nothing leaves a terminal state.
    if current.is_terminal:
        assert not any(can_task_transition(current, s) for s in TaskState)


def test_state_names_are_checked() -> None:
    assert to_task_state("claimed") is S.CLAIMED
    with pytest.raises(UsageError, match="'running' is not a task state: use one of queued"):
        to_task_state("running")


def _task(task_id: str = "t-1", **fields: object) -> Task:
    values: dict[str, object] = {"team": "red", "title": task_id}
    values.update(fields)
    return Task(id=task_id, **values)  # type: ignore[arg-type]


def test_only_the_holder_or_a_coordinator_acts_on_a_claim() -> None:
    held = _task(state=S.CLAIMED, assignee="alice")
    check_holder(held, "alice", doing="complete")
    check_holder(held, "bob", coordinator=True, doing="complete")
    with pytest.raises(NotHolder, match="held by alice, not bob: only the holder"):
        check_holder(held, "bob", doing="complete")
    with pytest.raises(NotHolder, match="is queued, not claimed"):
        check_holder(_task(), "alice", doing="heartbeat")
    assert issubclass(NotHolder, IllegalTransition)


def test_leases() -> None:
    assert lease_deadline(100.0, 30) == 130.0
    for bad in (0, -1, math.inf, math.nan, MAX_LEASE_S + 1, True, "5"):
        with pytest.raises(UsageError, match="lease"):
            lease_deadline(0.0, bad)  # type: ignore[arg-type]
    held = _task(state=S.CLAIMED, assignee="a", lease_expires_at=50.0)
    assert not lease_expired(held, 50.0)
    assert lease_expired(held, 50.5)
    assert not lease_expired(_task(lease_expires_at=1.0), 50.0)  # only claims expire


def test_readiness() -> None:
    assert readiness([]) is Readiness.READY
    assert readiness([S.DONE, S.DONE]) is Readiness.READY
    assert readiness([S.DONE, S.CLAIMED]) is Readiness.WAITING
    assert readiness([S.QUEUED, S.FAILED]) is Readiness.BLOCKED
    assert readiness([S.CANCELLED]) is Readiness.BLOCKED


@given(st.lists(states, max_size=6))
def test_readiness_is_ready_exactly_when_all_done(dep_states: list[TaskState]) -> None:
    ready = readiness(dep_states) is Readiness.READY
    assert ready == all(s is S.DONE for s in dep_states)


def test_bad_input_gets_one_clear_line() -> None:
    assert check_title("  fix it  ") == "fix it"
    with pytest.raises(UsageError, match="the task title is empty"):
        check_title("   ")
    with pytest.raises(UsageError, match="over 200"):
        check_title("x" * 201)
    with pytest.raises(UsageError, match="priority True is not an integer"):
        check_priority(True)
    with pytest.raises(UsageError, match="outside"):
        check_priority(10**9)
    assert normalize_labels([" db ", "api/v2", "db"]) == ("db", "api/v2")
    for bad in (["two words"], [""], ["-x"], ["a,b"], [3]):
        with pytest.raises(UsageError, match="is not valid"):
            normalize_labels(bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="as a list, not the single string"):
        normalize_labels("db")
    assert normalize_dependencies(["t-1", " t-2", "t-1"]) == ("t-1", "t-2")
    with pytest.raises(UsageError, match="not the string"):
        normalize_dependencies("t-1")


# -- cycles -----------------------------------------------------------------------------------

NODES = [f"n{i}" for i in range(7)]


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, list[str]]:
    return {node: draw(st.lists(st.sampled_from(NODES), max_size=3, unique=True)) for node in NODES}


def _reaches(graph: dict[str, list[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, []))
    return False


@given(graphs(), st.sampled_from(NODES), st.lists(st.sampled_from(NODES), max_size=3))
@settings(max_examples=150)
def test_find_cycle_agrees_with_reachability(
    graph: dict[str, list[str]], task_id: str, new_deps: list[str]
) -> None:
    """A cycle is found iff some new dependency reaches the task; the one found is real."""
    others = {k: v for k, v in graph.items() if k != task_id}
    cycle = find_cycle(task_id, new_deps, others)
    expected = any(_reaches(others, dep, task_id) for dep in new_deps)
    assert (cycle is not None) == expected
    if cycle is not None:
        assert cycle[0] == cycle[-1] == task_id
        edges = {task_id: new_deps, **others}
        for a, b in itertools.pairwise(cycle):
            assert b in edges[a], f"{a} -> {b} is not an edge of {cycle}"


def test_find_cycle_names_the_path() -> None:
    deps = {"b": ["c"], "c": ["a"]}
    assert find_cycle("a", ["b"], deps) == ("a", "b", "c", "a")
    assert find_cycle("a", ["a"], {}) == ("a", "a")
    assert find_cycle("a", ["c"], {"c": []}) is None


# -- capability and pick order -----------------------------------------------------------------

KINDS = [None, "claude", "codex"]
CAPS = ["py", "go", "db"]


@given(
    st.sampled_from(KINDS),
    st.lists(st.sampled_from(CAPS), unique=True),
    st.sampled_from(KINDS),
    st.lists(st.sampled_from(CAPS), unique=True),
)
def test_capability_match(
    task_kind: str | None, requires: list[str], kind: str | None, labels: list[str]
) -> None:
    task = _task(agent_kind=task_kind, requires=tuple(requires))
    expected = (task_kind is None or task_kind == kind) and set(requires) <= set(labels)
    assert capability_matches(task, kind, labels) == expected
    # More capabilities never match less.
    assert not capability_matches(task, kind, labels) or capability_matches(
        task, kind, [*labels, "extra"]
    )


@st.composite
def task_pools(draw: st.DrawFn) -> list[Task]:
    count = draw(st.integers(1, 8))
    ids = [f"t{i}" for i in range(count)]
    pool = []
    for i, task_id in enumerate(ids):
        pool.append(
            _task(
                task_id,
                team=draw(st.sampled_from(["red", "blue"])),
                state=draw(states),
                priority=draw(st.integers(-2, 2)),
                created_at=float(draw(st.integers(0, 3))),
                depends_on=tuple(draw(st.lists(st.sampled_from(ids[:i] or ["t0"]), max_size=2))),
                agent_kind=draw(st.sampled_from(KINDS)),
                requires=tuple(draw(st.lists(st.sampled_from(CAPS), max_size=2, unique=True))),
            )
        )
    return pool


@given(
    task_pools(),
    st.sampled_from(KINDS),
    st.lists(st.sampled_from(CAPS), unique=True),
    st.sampled_from([None, "red"]),
)
@settings(max_examples=150)
def test_pick_next_takes_the_first_claimable_in_pick_order(
    pool: list[Task], kind: str | None, labels: list[str], team: str | None
) -> None:
    picked = pick_next(pool, agent_kind=kind, labels=labels, team=team)
    state_of = {t.id: t.state for t in pool}
    fits = [t for t in pool if claimable(t, state_of, agent_kind=kind, labels=labels, team=team)]
    if picked is None:
        assert fits == []
        return
    assert picked in fits
    assert all(pick_key(picked) <= pick_key(t) for t in fits)
    assert picked.state is S.QUEUED
    assert all(state_of[d] is S.DONE for d in picked.depends_on)


def test_pick_order_is_priority_then_age_then_id() -> None:
    old_low = _task("a", priority=0, created_at=1.0)
    new_high = _task("b", priority=5, created_at=9.0)
    old_high = _task("c", priority=5, created_at=2.0)
    tie = _task("d", priority=5, created_at=2.0)
    ordered = sorted([old_low, new_high, tie, old_high], key=pick_key)
    assert [t.id for t in ordered] == ["c", "d", "b", "a"]
