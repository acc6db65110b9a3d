"""Hypothesis-generated DAGs: validity, order, back edges, readiness and termination."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.domain import dag
from flotilla.domain.workflow import StageSpec, StageState, WorkflowSpec

S = StageState
AGENTS = {"claude"}
WHENS = [None, None, None, "always", "any_failed", "all_succeeded"]


@st.composite
def dags(draw: st.DrawFn, min_size: int = 1) -> WorkflowSpec:
    """Stages s0..sN-1; each depends only on earlier ones, so the graph is acyclic."""
    size = draw(st.integers(min_value=min_size, max_value=12))
    stages = []
    for i in range(size):
        deps: set[int] = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        when = draw(st.sampled_from(WHENS))
        flip: bool = draw(st.booleans())
        if deps and flip:
            when = f"s{draw(st.sampled_from(sorted(deps)))}.failed"
        stages.append(
            StageSpec(
                name=f"s{i}",
                agent="claude",
                prompt="p",
                depends_on=tuple(f"s{d}" for d in sorted(deps)),
                when=when,
            )
        )
    order = draw(st.permutations(stages))  # spec order need not be topological
    return WorkflowSpec(name="w", stages=tuple(order), fail_fast=draw(st.booleans()))


@given(dags())
def test_random_dags_are_valid_and_ordered(spec: WorkflowSpec) -> None:
    assert dag.validate(spec, AGENTS) == []
    order = dag.topological_order(spec)
    assert sorted(order) == sorted(spec.stage_names)
    position = {name: i for i, name in enumerate(order)}
    for stage in spec.stages:
        for dep in stage.depends_on:
            assert position[dep] < position[stage.name]


@given(dags(min_size=2), st.data())
def test_a_back_edge_is_reported_as_a_cycle_naming_it(
    spec: WorkflowSpec, data: st.DataObject
) -> None:
    # pick v with an ancestor u, then make u depend on v: u -> v -> ... -> u
    candidates = [(s.name, a) for s in spec.stages for a in sorted(dag.ancestors(spec, s.name))]
    if not candidates:
        return
    v, u = data.draw(st.sampled_from(candidates))
    stages = tuple(
        replace(s, depends_on=(*s.depends_on, v), when=None) if s.name == u else s
        for s in spec.stages
    )
    cyclic = replace(spec, stages=stages)
    cycles = [p for p in dag.validate(cyclic, AGENTS) if p.startswith("cycle: ")]
    assert len(cycles) == 1, cycles
    path = cycles[0].removeprefix("cycle: ").split(" (")[0].split(" -> ")
    assert path[0] == path[-1]
    assert (u, v) in set(itertools.pairwise(path))
    # every step of the named cycle is a real depends_on edge
    deps = {s.name: set(s.depends_on) for s in stages}
    assert all(b in deps[a] for a, b in itertools.pairwise(path))


def _run(spec: WorkflowSpec, data: st.DataObject) -> dict[str, StageState]:
    """Drive the workflow with random finishing order and outcomes until nothing moves."""
    states: dict[str, StageState] = {}
    outcomes: dict[str, str] = {}
    for _ in range(10 * len(spec.stages) + 10):
        readiness = dag.plan(spec, states, outcomes)
        for name in readiness.cancel:
            states[name] = S.CANCELLED
        for name in readiness.skip:
            states[name] = S.SKIPPED
        for name in readiness.start:
            for dep in dag.ancestors(spec, name):  # never before its inputs are done
                assert states[dep].is_terminal
            for dep in spec.stage(name).depends_on:
                if spec.stage(name).when is None:
                    assert states[dep] is S.SUCCEEDED
            states[name] = S.RUNNING
        running = sorted(n for n, s in states.items() if s is S.RUNNING)
        if not running:
            break
        name = data.draw(st.sampled_from(running))
        ok = data.draw(st.booleans())
        states[name] = S.SUCCEEDED if ok else S.FAILED
        outcomes[name] = "success" if ok else "error"
    return states


@settings(max_examples=150, deadline=None)
@given(dags(), st.data())
def test_every_stage_becomes_terminal_under_random_outcomes(
    spec: WorkflowSpec, data: st.DataObject
) -> None:
    states = _run(spec, data)
    assert set(states) == set(spec.stage_names)
    assert all(state.is_terminal for state in states.values()), states
    assert dag.workflow_state(spec, states, {}).is_terminal


@given(dags(), st.data())
def test_no_stage_ever_skipped_while_its_dependencies_all_succeeded(
    spec: WorkflowSpec, data: st.DataObject
) -> None:
    states = _run(spec, data)
    if spec.fail_fast:
        return
    for stage in spec.stages:
        deps_ok = all(states[d] is S.SUCCEEDED for d in stage.depends_on)
        if stage.when is None and deps_ok:
            assert states[stage.name] in (S.SUCCEEDED, S.FAILED)
