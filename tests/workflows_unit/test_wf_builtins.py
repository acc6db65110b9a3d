"""Built-in workflow templates: each one loads, validates and has the promised shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.domain import dag
from flotilla.domain.errors import UsageError
from flotilla.executors.registry import kinds
from flotilla.orchestrator.workflow_files import (
    builtin_names,
    builtin_params,
    load_builtin,
    resolve_workflow,
)

AGENTS = set(kinds())


def test_the_four_templates_exist() -> None:
    assert builtin_names() == ["compete", "fanout-review", "judge", "write-review-refine"]


@pytest.mark.parametrize("name", ["compete", "fanout-review", "judge", "write-review-refine"])
def test_each_template_validates(name: str) -> None:
    spec = load_builtin(name, task_prompt="Add a login page")
    assert spec.name == name and spec.description
    assert dag.validate(spec, AGENTS) == []
    assert dag.topological_order(spec)


@pytest.mark.parametrize("name", ["compete", "fanout-review", "judge", "write-review-refine"])
def test_each_template_needs_a_task(name: str) -> None:
    problems = dag.validate(load_builtin(name), AGENTS)
    assert len(problems) == 1 and "task prompt is empty" in problems[0]


def test_write_review_refine_shape() -> None:
    spec = load_builtin("write-review-refine", task_prompt="t")
    implement, review, refine = spec.stages
    assert implement.agent == refine.agent == "claude" and review.agent == "codex"
    assert refine.worktree == "inherit" and refine.inherit_from == "implement"
    assert dag.topological_order(spec) == ["implement", "review", "refine"]
    swapped = load_builtin("write-review-refine", {"writer": "codex", "reviewer": "claude"})
    assert [s.agent for s in swapped.stages] == ["codex", "claude", "codex"]


def test_compete_shape_and_parameters() -> None:
    spec = load_builtin("compete", task_prompt="t")
    (implement,) = spec.stages
    assert implement.rank and implement.judge == "claude"
    assert [w.agent for w in implement.workers()] == ["claude", "codex"]
    five = load_builtin("compete", {"agents": "claude", "count": "5"}, task_prompt="t")
    assert [w.agent for w in five.stages[0].workers()] == ["claude"] * 5
    mixed = load_builtin("compete", {"agents": ["claude", "codex", "gemini"]})
    assert mixed.stages[0].worker_count == 3


def test_fanout_review_shape() -> None:
    spec = load_builtin("fanout-review", task_prompt="t")
    work, review = spec.stages
    assert [w.part for w in work.workers()] == [
        "the implementation",
        "the tests",
        "the documentation",
    ]
    assert review.depends_on == ("work",) and review.worker_count == 1
    two = load_builtin("fanout-review", {"parts": "api,cli"}, task_prompt="t")
    assert two.stages[0].parts == ("api", "cli")


def test_judge_shape() -> None:
    spec = load_builtin("judge", task_prompt="t")
    candidates, judge = spec.stages
    assert candidates.worker_count == 2 and judge.picks == "candidates"
    assert "WINNER: <name>" in judge.prompt


def test_builtin_params() -> None:
    assert builtin_params("compete") == {
        "agents": ["claude", "codex"],
        "count": 1,
        "judge": "claude",
    }


def test_unknown_template_and_parameter() -> None:
    with pytest.raises(UsageError, match="unknown workflow template 'nope': choose one of compete"):
        load_builtin("nope")
    with pytest.raises(UsageError, match="unknown parameter 'writers'"):
        load_builtin("write-review-refine", {"writers": "x"})


def test_resolve_workflow(tmp_path: Path) -> None:
    assert resolve_workflow("compete", task_prompt="t").name == "compete"
    (tmp_path / "mine.toml").write_text(
        '[[stages]]\nname = "a"\nagent = "claude"\nprompt = "{task_prompt}"\n'
    )
    assert resolve_workflow("mine.toml", cwd=tmp_path, task_prompt="t").name == "mine"
    with pytest.raises(UsageError, match="unknown workflow 'nothing'"):
        resolve_workflow("nothing", cwd=tmp_path)
