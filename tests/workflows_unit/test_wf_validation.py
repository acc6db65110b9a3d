"""Validation reports every problem of a workflow at once, one clear line each."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.domain import dag
from flotilla.domain.workflow import StageSpec, WorkflowInvalid, WorkflowSpec

AGENTS = {"claude", "codex", "scripted"}


def st(name: str, *deps: str, **kw: Any) -> StageSpec:
    kw.setdefault("agent", "claude")
    kw.setdefault("prompt", "do {task_prompt}")
    return StageSpec(name=name, depends_on=deps, **kw)


def wf(*stages: StageSpec, **kw: Any) -> WorkflowSpec:
    kw.setdefault("task_prompt", "the task")
    return WorkflowSpec(name="w", stages=stages, **kw)


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def test_a_good_workflow_has_no_problems() -> None:
    spec = wf(
        st("implement"),
        st("review", "implement", agent="codex", prompt="{stages.implement.summary}"),
        st(
            "refine",
            "review",
            worktree="inherit",
            inherit_from="implement",
            prompt="{stage_1_next_steps} {stages.implement.files}",
        ),
    )
    assert dag.validate(spec, AGENTS) == []
    dag.check(spec, AGENTS)


def test_cycle_is_named() -> None:
    spec = wf(st("a", "b"), st("b", "a"), st("c"))
    assert only(dag.validate(spec, AGENTS)) == (
        "cycle: a -> b -> a (each stage depends on the next)"
    )


def test_self_dependency_is_a_cycle() -> None:
    assert "cycle: a -> a" in only(dag.validate(wf(st("a", "a")), AGENTS))


def test_two_separate_cycles_are_both_reported() -> None:
    spec = wf(st("a", "b"), st("b", "a"), st("c", "d"), st("d", "e"), st("e", "c"))
    cycles = [p for p in dag.validate(spec, AGENTS) if p.startswith("cycle")]
    assert [c.split(" (")[0] for c in cycles] == ["cycle: a -> b -> a", "cycle: c -> d -> e -> c"]


def test_topological_order_refuses_a_cycle() -> None:
    with pytest.raises(WorkflowInvalid, match="cycle: a -> b -> a"):
        dag.topological_order(wf(st("a", "b"), st("b", "a")))


def test_unknown_dependency() -> None:
    assert only(dag.validate(wf(st("a", "nope")), AGENTS)) == (
        "stage 'a' depends on unknown stage 'nope'"
    )


def test_unknown_agent_kind_lists_the_known_ones() -> None:
    problem = only(dag.validate(wf(st("a", agent="cluade")), AGENTS))
    assert (
        problem == "stage 'a' uses unknown agent kind 'cluade': choose from claude, codex, scripted"
    )


def test_unknown_agent_among_several_and_judge() -> None:
    spec = wf(st("a", agent="claude", agents=("claude", "gpt"), rank=True, judge="oracle"))
    problems = dag.validate(spec, AGENTS)
    assert any("'gpt'" in p for p in problems) and any("'oracle'" in p for p in problems)


def test_duplicate_stage_names() -> None:
    problems = dag.validate(wf(st("a"), st("a")), AGENTS)
    assert "two stages are named 'a': stage names must be unique" in problems


def test_inherit_from_a_stage_that_is_not_an_ancestor() -> None:
    spec = wf(st("a"), st("b"), st("c", "a", worktree="inherit", inherit_from="b"))
    assert only(dag.validate(spec, AGENTS)) == (
        "stage 'c' inherits the worktree of 'b', which is not upstream: add 'b' to its depends_on"
    )


def test_inherit_needs_a_source_and_new_needs_none() -> None:
    problems = dag.validate(
        wf(st("a"), st("b", "a", worktree="inherit"), st("c", "a", inherit_from="a")), AGENTS
    )
    assert "stage 'b' inherits a worktree but names no stage: set inherit_from" in problems
    assert "stage 'c' sets inherit_from but worktree is 'new': set 'inherit'" in problems


def test_two_parallel_stages_inheriting_the_same_worktree() -> None:
    spec = wf(
        st("a"),
        st("b", "a", worktree="inherit", inherit_from="a"),
        st("c", "a", worktree="inherit", inherit_from="a"),
    )
    assert only(dag.validate(spec, AGENTS)) == (
        "stages 'b' and 'c' both work in the worktree of 'a' but neither depends on the other: "
        "chain them or give one worktree 'new'"
    )


def test_inheritance_is_transitive_for_sharing() -> None:
    # c works in b's worktree, which is a's; d works in a's: c and d are parallel
    spec = wf(
        st("a"),
        st("b", "a", worktree="inherit", inherit_from="a"),
        st("c", "b", worktree="inherit", inherit_from="b"),
        st("d", "a", worktree="inherit", inherit_from="a"),
    )
    problems = dag.validate(spec, AGENTS)
    assert problems == [
        "stages 'b' and 'd' both work in the worktree of 'a' but neither depends on the other: "
        "chain them or give one worktree 'new'",
        "stages 'c' and 'd' both work in the worktree of 'a' but neither depends on the other: "
        "chain them or give one worktree 'new'",
    ]


def test_a_chain_sharing_one_worktree_is_fine() -> None:
    spec = wf(
        st("a"),
        st("b", "a", worktree="inherit", inherit_from="a"),
        st("c", "b", worktree="inherit", inherit_from="a"),
    )
    assert dag.validate(spec, AGENTS) == []


def test_inherit_from_a_fan_out_needs_rank() -> None:
    spec = wf(st("a", count=3), st("b", "a", worktree="inherit", inherit_from="a"))
    assert "set rank = true" in only(dag.validate(spec, AGENTS))
    ranked = wf(st("a", count=3, rank=True), st("b", "a", worktree="inherit", inherit_from="a"))
    assert dag.validate(ranked, AGENTS) == []


def test_a_fan_out_cannot_inherit() -> None:
    spec = wf(st("a"), st("b", "a", worktree="inherit", inherit_from="a", count=2))
    assert "parallel workers cannot share one worktree" in only(dag.validate(spec, AGENTS))


def test_template_reference_to_a_stage_that_is_not_upstream() -> None:
    spec = wf(st("a", prompt="{stages.b.summary}"), st("b"))
    assert only(dag.validate(spec, AGENTS)) == (
        "stage 'a' prompt uses {stages.b.summary} but 'b' is not upstream of 'a': "
        "add 'b' to its depends_on"
    )


def test_template_positional_reference_resolves_to_a_stage() -> None:
    spec = wf(st("a"), st("b", prompt="{stage_0_summary}"), st("c", prompt="{stage_7_files}"))
    problems = dag.validate(spec, AGENTS)
    assert "'a' is not upstream of 'b'" in problems[0]
    assert "only 3 stages" in problems[1]
    assert len(problems) == 2


def test_template_unknown_variables() -> None:
    spec = wf(st("a"), st("b", "a", prompt="{task} {stages.a.summry} {stages.zz.summary}"))
    problems = dag.validate(spec, AGENTS)
    assert len(problems) == 3
    assert problems[0].startswith("stage 'b' prompt uses unknown variable {task}: known are")
    assert problems[1].startswith("stage 'b' prompt uses unknown variable {stages.a.summry}")
    assert problems[2] == "stage 'b' prompt uses {stages.zz.summary} but there is no stage 'zz'"


def test_part_variable_needs_parts() -> None:
    spec = wf(st("a", prompt="{part}"), st("b", prompt="{part}", parts=("x", "y")))
    assert (
        only(dag.validate(spec, AGENTS))
        == "stage 'a' prompt uses {part} but the stage has no `parts`"
    )


def test_bad_when() -> None:
    spec = wf(st("a"), st("b", "a", when="a.exploded"), st("c", when="a.failed"))
    problems = dag.validate(spec, AGENTS)
    assert problems[0].startswith("stage 'b': bad `when` 'a.exploded'")
    assert problems[1] == (
        "stage 'c' `when` refers to 'a', which is not upstream: add 'a' to its depends_on"
    )


def test_numbers() -> None:
    spec = wf(
        st("a", count=0, retries=-1, timeout_s=0),
        max_cost_usd=0,
        max_tokens=-5,
    )
    problems = dag.validate(spec, AGENTS)
    assert "stage 'a' has count 0: count must be at least 1" in problems
    assert "stage 'a' has retries -1: it must be 0 or more" in problems
    assert "stage 'a' has timeout_s 0: it must be positive" in problems
    assert "max_cost_usd is 0: it must be positive" in problems
    assert "max_tokens is -5: it must be positive" in problems


def test_empty_task_prompt_when_used() -> None:
    problem = only(dag.validate(wf(st("a"), task_prompt=""), AGENTS))
    assert "task prompt is empty" in problem
    assert dag.validate(wf(st("a", prompt="fixed"), task_prompt=""), AGENTS) == []


def test_judge_needs_rank_and_picks_needs_upstream() -> None:
    spec = wf(st("a", judge="claude"), st("b", picks="a"))
    problems = dag.validate(spec, AGENTS)
    assert "stage 'a' names a judge but does not rank: set rank = true" in problems
    assert "stage 'b' picks the winner of 'a', which is not upstream" in problems


def test_all_problems_at_once() -> None:
    spec = wf(
        st("a", "b"),
        st("b", "a", agent="nope"),
        st("c", "ghost", count=0, prompt="{stages.d.summary}"),
        st("d", when="c.failed"),
        st("c"),
    )
    problems = dag.validate(spec, AGENTS)
    assert len(problems) == 7, problems
    with pytest.raises(WorkflowInvalid) as info:
        dag.check(spec, AGENTS)
    assert info.value.problems == problems
    assert "\n" not in str(info.value)


def test_empty_workflow() -> None:
    assert dag.validate(wf(), AGENTS) == [
        "the workflow has no stages: add at least one [[stages]] table"
    ]
