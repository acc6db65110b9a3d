"""The workflow DAG: graph facts, validation, readiness and the workflow's overall state.

Pure functions of a WorkflowSpec and the stages' current states: the engine
stores a transition, then asks `plan` what to do next. Edges follow
`depends_on`; a stage is upstream of another when it is one of its ancestors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flotilla.domain.conditions import ConditionContext, parse_condition, read_condition
from flotilla.domain.graph import Graph, graph
from flotilla.domain.templating import template_problems
from flotilla.domain.workflow import (
    WORKTREE_MODES,
    StageState,
    WorkflowInvalid,
    WorkflowSpec,
    WorkflowState,
    stage_name_problem,
)


@dataclass(frozen=True)
class Readiness:
    """What the engine should do now, decided from the stored states."""

    start: tuple[str, ...] = ()  # pending stages whose inputs are ready: make READY and start
    skip: tuple[str, ...] = ()  # pending stages that will never run: make SKIPPED
    cancel: tuple[str, ...] = ()  # fail_fast after a failure: every stage not yet terminal


def describe_cycle(cycle: tuple[str, ...] | list[str]) -> str:
    return "cycle: " + " -> ".join(cycle) + " (each stage depends on the next)"


def _require_acyclic(spec: WorkflowSpec) -> Graph:
    g = graph(spec)
    if g.cycles:
        raise WorkflowInvalid(spec.name, [describe_cycle(c) for c in g.cycles])
    return g


def topological_order(spec: WorkflowSpec) -> list[str]:
    """Stage names so that each comes after all of its dependencies; ties in spec order."""
    return list(_require_acyclic(spec).order)


def ancestors(spec: WorkflowSpec, name: str) -> frozenset[str]:
    """Every stage upstream of `name` (its dependencies, theirs, and so on)."""
    return graph(spec).ancestors.get(name, frozenset())


def descendants(spec: WorkflowSpec, name: str) -> frozenset[str]:
    return frozenset(n for n, up in graph(spec).ancestors.items() if name in up)


def _context(
    states: Mapping[str, StageState], outcomes: Mapping[str, str], upstream: frozenset[str]
) -> ConditionContext:
    return ConditionContext(states=states, outcomes=outcomes, upstream=upstream)


def plan(
    spec: WorkflowSpec, states: Mapping[str, StageState], outcomes: Mapping[str, str]
) -> Readiness:
    """Which pending stages start, which are skipped, and (fail_fast) which are cancelled.

    A pending stage is decided once every upstream stage is terminal: without a
    `when` it runs if all its dependencies succeeded and is skipped otherwise;
    with a `when` it runs if the condition holds. Skips cascade in this one call.
    Missing states count as PENDING. Raises WorkflowInvalid on a cycle or bad `when`.
    """
    g = _require_acyclic(spec)
    current = {name: states.get(name, StageState.PENDING) for name in g.order}
    if spec.fail_fast and StageState.FAILED in current.values():
        return Readiness(cancel=tuple(n for n in g.order if not current[n].is_terminal))
    start: list[str] = []
    skip: list[str] = []
    stages = {stage.name: stage for stage in reversed(spec.stages)}
    for name in g.order:
        if current[name] is not StageState.PENDING:
            continue
        upstream = g.ancestors[name]
        if not all(current[up].is_terminal for up in upstream):
            continue
        when = stages[name].when
        if when is None:
            go = all(current[dep] is StageState.SUCCEEDED for dep in g.deps[name])
        else:
            condition = read_condition(when)
            if isinstance(condition, str):
                raise WorkflowInvalid(spec.name, [f"stage {name!r}: {condition}"])
            go = condition.evaluate(_context(current, outcomes, upstream))
        if go:
            start.append(name)
        else:
            skip.append(name)
            current[name] = StageState.SKIPPED
    return Readiness(start=tuple(start), skip=tuple(skip))


def ready_stages(
    spec: WorkflowSpec, states: Mapping[str, StageState], outcomes: Mapping[str, str]
) -> list[str]:
    """The pending stages that can start now (see `plan` for skips and cancels)."""
    return list(plan(spec, states, outcomes).start)


def _handled(
    spec: WorkflowSpec,
    failed: str,
    states: Mapping[str, StageState],
    outcomes: Mapping[str, str],
) -> bool:
    """A failure is handled when a stage ran *because of it* (its `when` would have been
    false had the stage succeeded) and that stage succeeded, e.g. `fix` after `test`."""
    what_if_states = {**states, failed: StageState.SUCCEEDED}
    what_if_outcomes = {**outcomes, failed: "success"}
    for stage in spec.stages:
        if (
            stage.when is None
            or states.get(stage.name) is not StageState.SUCCEEDED
            or failed not in ancestors(spec, stage.name)
        ):
            continue
        upstream = ancestors(spec, stage.name)
        condition = parse_condition(stage.when)
        if not condition.evaluate(_context(what_if_states, what_if_outcomes, upstream)):
            return True
    return False


def workflow_state(
    spec: WorkflowSpec, states: Mapping[str, StageState], outcomes: Mapping[str, str]
) -> WorkflowState:
    """The workflow's state implied by its stages' states.

    FAILED if a stage failed and no stage handled that failure (see `_handled`),
    else CANCELLED if a stage was cancelled, else SUCCEEDED (skips are fine).
    """
    current = [states.get(stage.name, StageState.PENDING) for stage in spec.stages]
    if all(state is StageState.PENDING for state in current):
        return WorkflowState.PENDING
    if not all(state.is_terminal for state in current):
        return WorkflowState.RUNNING
    for stage, state in zip(spec.stages, current, strict=True):
        if state is StageState.FAILED and not _handled(spec, stage.name, states, outcomes):
            return WorkflowState.FAILED
    if StageState.CANCELLED in current:
        return WorkflowState.CANCELLED
    return WorkflowState.SUCCEEDED


def _stage_problems(spec: WorkflowSpec, known_agents: set[str]) -> list[str]:
    """Problems of each stage on its own (names, agents, numbers, worktree settings)."""
    problems: list[str] = []
    names = set(spec.stage_names)
    seen: set[str] = set()
    for stage in spec.stages:
        where = f"stage {stage.name!r}"
        problem = stage_name_problem(stage.name)
        if problem:
            problems.append(problem)
        if stage.name in seen:
            problems.append(f"two stages are named {stage.name!r}: stage names must be unique")
        seen.add(stage.name)
        for kind in dict.fromkeys((*stage.agent_kinds, *([stage.judge] if stage.judge else []))):
            if kind not in known_agents:
                choices = ", ".join(sorted(known_agents)) or "none registered"
                problems.append(f"{where} uses unknown agent kind {kind!r}: choose from {choices}")
        unknown = [dep for dep in stage.depends_on if dep not in names]
        problems += [f"{where} depends on unknown stage {dep!r}" for dep in unknown]
        if not stage.prompt.strip():
            problems.append(f"{where} has an empty prompt")
        if stage.count < 1:
            problems.append(f"{where} has count {stage.count}: count must be at least 1")
        if stage.parts and stage.count != 1:
            problems.append(f"{where} has both parts and count: one worker runs per part")
        if stage.retries < 0:
            problems.append(f"{where} has retries {stage.retries}: it must be 0 or more")
        if stage.timeout_s is not None and stage.timeout_s <= 0:
            problems.append(f"{where} has timeout_s {stage.timeout_s}: it must be positive")
        if stage.gate is not None and not stage.gate.strip():
            problems.append(f"{where} has an empty gate: give a command or remove it")
        if stage.judge and not stage.rank:
            problems.append(f"{where} names a judge but does not rank: set rank = true")
        if stage.worktree not in WORKTREE_MODES:
            problems.append(f"{where} has worktree {stage.worktree!r}: use 'new' or 'inherit'")
        elif stage.worktree == "inherit":
            if stage.inherit_from is None:
                problems.append(f"{where} inherits a worktree but names no stage: set inherit_from")
            if stage.base_ref is not None:
                problems.append(f"{where} inherits a worktree, so base_ref does not apply")
            if stage.worker_count > 1:
                problems.append(
                    f"{where} inherits a worktree but has {stage.worker_count} workers: "
                    "parallel workers cannot share one worktree"
                )
        elif stage.inherit_from is not None:
            problems.append(f"{where} sets inherit_from but worktree is 'new': set 'inherit'")
    return problems


def _graph_problems(spec: WorkflowSpec, g: Graph) -> list[str]:
    """Problems between stages: inheritance, shared worktrees, templates, conditions."""
    problems: list[str] = []
    stages = {stage.name: stage for stage in reversed(spec.stages)}
    order = spec.stage_names
    roots: dict[str, str] = {}  # stage -> the stage whose worktree it works in
    for stage in spec.stages:
        where = f"stage {stage.name!r}"
        upstream = g.ancestors.get(stage.name, frozenset())
        source = stage.inherit_from
        if stage.worktree == "inherit" and source is not None:
            if source not in stages:
                problems.append(f"{where} inherits from unknown stage {source!r}")
            elif source not in upstream:
                problems.append(
                    f"{where} inherits the worktree of {source!r}, which is not upstream: "
                    f"add {source!r} to its depends_on"
                )
            elif stages[source].worker_count > 1 and not stages[source].rank:
                problems.append(
                    f"{where} inherits from {source!r}, which has {stages[source].worker_count} "
                    "workers and no rank: set rank = true there so the winner's worktree is used"
                )
        problems += template_problems(
            stage.prompt,
            stage=stage.name,
            order=order,
            upstream=upstream,
            has_parts=bool(stage.parts),
        )
        if stage.picks is not None and stage.picks not in upstream:
            problems.append(f"{where} picks the winner of {stage.picks!r}, which is not upstream")
        if stage.when is not None:
            condition = read_condition(stage.when)
            if isinstance(condition, str):
                problems.append(f"{where}: {condition}")
            else:
                problems += [
                    f"{where} `when` refers to {name!r}, which is not upstream: "
                    f"add {name!r} to its depends_on"
                    for name in sorted(condition.stages() - upstream)
                ]
    if g.cycles:
        return problems  # worktree roots are meaningless on a cycle
    for name in g.order:
        stage = stages[name]
        source = stage.inherit_from if stage.worktree == "inherit" else None
        roots[name] = roots.get(source, source) if source in g.ancestors[name] else name
    by_root: dict[str, list[str]] = {}
    for name in g.order:
        by_root.setdefault(roots[name], []).append(name)
    for root, sharing in by_root.items():
        for i, first in enumerate(sharing):
            for second in sharing[i + 1 :]:
                if first not in g.ancestors[second] and second not in g.ancestors[first]:
                    problems.append(
                        f"stages {first!r} and {second!r} both work in the worktree of {root!r} "
                        "but neither depends on the other: chain them or give one worktree 'new'"
                    )
    return problems


def validate(spec: WorkflowSpec, known_agents: set[str]) -> list[str]:
    """Every problem of `spec`, one clear line each; empty when it can run."""
    problems: list[str] = []
    if not spec.name.strip():
        problems.append("the workflow has no name")
    if not spec.stages:
        problems.append("the workflow has no stages: add at least one [[stages]] table")
    if spec.max_cost_usd is not None and spec.max_cost_usd <= 0:
        problems.append(f"max_cost_usd is {spec.max_cost_usd}: it must be positive")
    if spec.max_tokens is not None and spec.max_tokens <= 0:
        problems.append(f"max_tokens is {spec.max_tokens}: it must be positive")
    uses_task = [s.name for s in spec.stages if "{task_prompt}" in s.prompt]
    if uses_task and not spec.task_prompt.strip():
        problems.append(
            f"the task prompt is empty but stage {uses_task[0]!r} uses {{task_prompt}}: "
            "give one (-p TASK or task_prompt = ...)"
        )
    problems += _stage_problems(spec, known_agents)
    g = graph(spec)
    problems += [describe_cycle(cycle) for cycle in g.cycles]
    problems += _graph_problems(spec, g)
    return problems


def check(spec: WorkflowSpec, known_agents: set[str]) -> None:
    """Raise WorkflowInvalid listing every problem of `spec`, if it has any."""
    problems = validate(spec, known_agents)
    if problems:
        raise WorkflowInvalid(spec.name or "?", problems)


def resume_stages(
    spec: WorkflowSpec, states: Mapping[str, StageState], outcomes: Mapping[str, str]
) -> tuple[str, ...]:
    """`fleet workflow resume`: the stages to move back to PENDING, in topological order.

    Every failure no stage handled, every cancelled stage, and every skipped
    stage downstream of those. Succeeded stages (and handled failures) stay.
    """
    g = _require_acyclic(spec)
    again = {
        name
        for name in g.order
        if states.get(name) is StageState.CANCELLED
        or (states.get(name) is StageState.FAILED and not _handled(spec, name, states, outcomes))
    }
    for name in g.order:
        if states.get(name) is StageState.SKIPPED and g.ancestors[name] & again:
            again.add(name)
    return tuple(name for name in g.order if name in again)
