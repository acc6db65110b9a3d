"""Workflow files: TOML, YAML and JSON parse to the same spec; errors name file, line, column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flotilla.domain import dag
from flotilla.domain.errors import UsageError
from flotilla.orchestrator.workflow_files import load_workflow, parse_text, parse_workflow

AGENTS = {"claude", "codex"}

TOML = """\
name = "wrr"
task_prompt = "Add login"
fail_fast = true
max_cost_usd = 5
max_tokens = 100000

[[stages]]
name = "implement"
agent = "claude"
model = "opus"
flags = "--max-turns 5"
prompt = "{task_prompt}"
timeout_s = 600
retries = 1
gate = "make lint"

[[stages]]
name = "review"
agent = "codex"
depends_on = "implement"
worktree = "inherit"
prompt = "Review: {stages.implement.summary}"

[[stages]]
name = "fix"
agent = ["claude", "codex"]
count = 2
rank = true
judge = "claude"
depends_on = ["review"]
when = "review.outcome == 'tests_failed'"
base_ref = "main"
prompt = '''Fix {"json": true}: {stage_1_next_steps}'''
"""

DATA = {
    "name": "wrr",
    "task_prompt": "Add login",
    "fail_fast": True,
    "max_cost_usd": 5,
    "max_tokens": 100000,
    "stages": [
        {
            "name": "implement",
            "agent": "claude",
            "model": "opus",
            "flags": ["--max-turns", "5"],
            "prompt": "{task_prompt}",
            "timeout_s": 600,
            "retries": 1,
            "gate": "make lint",
        },
        {
            "name": "review",
            "agent": "codex",
            "depends_on": ["implement"],
            "worktree": "inherit",
            "prompt": "Review: {stages.implement.summary}",
        },
        {
            "name": "fix",
            "agents": ["claude", "codex"],
            "count": 2,
            "rank": True,
            "judge": "claude",
            "depends_on": ["review"],
            "when": "review.outcome == 'tests_failed'",
            "base_ref": "main",
            "prompt": 'Fix {"json": true}: {stage_1_next_steps}',
        },
    ],
}

YAML = """\
name: wrr
task_prompt: Add login
fail_fast: true
max_cost_usd: 5
max_tokens: 100000
stages:
  implement:
    agent: claude
    model: opus
    extra_flags: [--max-turns, "5"]
    prompt: "{task_prompt}"
    timeout_s: 600
    retries: 1
    gate: make lint
  review:
    agent: codex
    depends_on: [implement]
    worktree: inherit
    prompt: "Review: {stages.implement.summary}"
  fix:
    agent: [claude, codex]
    count: 2
    rank: true
    judge: claude
    depends_on: [review]
    when: review.outcome == 'tests_failed'
    base_ref: main
    prompt: 'Fix {"json": true}: {stage_1_next_steps}'
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_yaml_and_json_give_the_same_spec(tmp_path: Path) -> None:
    from_toml = load_workflow(write(tmp_path, "w.toml", TOML))
    from_yaml = load_workflow(write(tmp_path, "w.yaml", YAML))
    from_json = load_workflow(write(tmp_path, "w.json", json.dumps(DATA)))
    assert from_toml == from_yaml == from_json == parse_workflow(DATA, "api")
    assert dag.validate(from_toml, AGENTS) == []
    implement, review, fix = from_toml.stages
    assert implement.extra_flags == ("--max-turns", "5") and implement.model == "opus"
    assert implement.timeout_s == 600.0 and implement.gate == "make lint"
    assert review.inherit_from == "implement"  # the only dependency
    assert fix.agent_kinds == ("claude", "codex") and fix.worker_count == 4
    assert from_toml.max_cost_usd == 5.0 and from_toml.fail_fast


def test_name_defaults_to_the_file_stem_and_task_prompt_can_be_given(tmp_path: Path) -> None:
    text = '[[stages]]\nname = "a"\nagent = "claude"\nprompt = "{task_prompt}"\n'
    spec = load_workflow(write(tmp_path, "my-flow.toml", text), task_prompt="Do it")
    assert spec.name == "my-flow" and spec.task_prompt == "Do it"


def test_inherit_shorthand() -> None:
    spec = parse_workflow(
        {
            "name": "w",
            "stages": [
                {"name": "a", "agent": "claude", "prompt": "p"},
                {"name": "b", "agent": "claude", "prompt": "p", "depends_on": ["a"]},
                {
                    "name": "c",
                    "agent": "claude",
                    "prompt": "p",
                    "depends_on": ["a", "b"],
                    "worktree": "inherit:a",
                },
            ],
        },
        "api",
    )
    assert spec.stages[2].worktree == "inherit" and spec.stages[2].inherit_from == "a"


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.toml", 'name = "x"\n[[stages]]\nname = \n', "bad.toml:3:8: invalid TOML"),
        ("bad.toml", 'name = "x"\nstages = [\n', "bad.toml:2:11: invalid TOML: Invalid value"),
        (
            "end.toml",
            'name = "x"\ntask_prompt = "open',
            "end.toml:2:20: invalid TOML: Unterminated",
        ),
        ("bad.yaml", "name: x\nstages:\n  - name: [a\n    agent: b\n", "bad.yaml:4:"),
        ("bad.yml", "name: x\n  bad: indent\n", "bad.yml:2:6: invalid YAML"),
        ("bad.json", '{"name": "x",\n "stages": [}\n', "bad.json:2:13: invalid JSON"),
    ],
)
def test_syntax_errors_name_file_line_and_column(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    with pytest.raises(UsageError) as info:
        load_workflow(write(tmp_path, name, text))
    message = str(info.value)
    assert where in message, message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_unknown_keys_name_the_key_and_a_close_match() -> None:
    stage = {"name": "a", "agent": "claude", "prompt": "p", "depends": ["x"]}
    with pytest.raises(
        UsageError, match=r"api: stage 'a': unknown key 'depends'; did you mean 'depends_on'\?"
    ):
        parse_workflow({"name": "w", "stages": [stage]}, "api")
    with pytest.raises(UsageError, match="api: unknown key 'stagez'; did you mean 'stages'"):
        parse_workflow({"name": "w", "stagez": []}, "api")
    with pytest.raises(UsageError, match="unknown key 'zzz'; known keys: name, description"):
        parse_workflow({"zzz": 1}, "api")


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (
            {"agent": "claude", "prompt": "p", "count": "three"},
            "count must be an integer, got 'three'",
        ),
        ({"agent": "claude", "prompt": "p", "count": True}, "count must be an integer"),
        ({"agent": "claude", "prompt": "p", "rank": "yes"}, "rank must be true or false"),
        ({"agent": "claude", "prompt": 3}, "prompt must be a string"),
        (
            {"agent": "claude", "prompt": "p", "depends_on": [1]},
            "depends_on must be a list of strings",
        ),
        ({"agent": "claude", "prompt": "p", "timeout_s": "1h"}, "timeout_s must be a number"),
        ({"prompt": "p"}, "the stage has no agent"),
        ({"agent": [], "prompt": "p"}, "the stage has no agent"),
        ({"agent": "claude"}, "the stage has no prompt"),
        ({"agent": "a", "agents": ["b"], "prompt": "p"}, "give agent or agents, not both"),
        (
            {"agent": "claude", "prompt": "p", "worktree": "shared"},
            "worktree must be 'new' or 'inherit'",
        ),
        ({"agent": "claude", "prompt": "p", "flags": [], "extra_flags": []}, "not both"),
    ],
)
def test_bad_values(stage: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_workflow({"name": "w", "stages": {"s": stage}}, "w.toml")


def test_stage_key_and_name_must_agree() -> None:
    with pytest.raises(UsageError, match="differs from its table key"):
        parse_workflow(
            {"name": "w", "stages": {"a": {"name": "b", "agent": "x", "prompt": "p"}}}, "f"
        )


def test_params_substitute_whole_values_only() -> None:
    data = {
        "name": "w",
        "params": {"kinds": ["claude"], "n": 2, "gate": "make check", "fast": False},
        "fail_fast": "$fast",
        "stages": [
            {
                "name": "a",
                "agent": "$kinds",
                "count": "$n",
                "gate": "$gate",
                "prompt": "costs $n dollars, $HOME stays",
            },
            {"name": "b", "agent": "claude", "prompt": "p", "gate": "$UNDECLARED"},
        ],
    }
    spec = parse_workflow(data, "f")
    assert spec.stages[0].count == 2 and spec.stages[0].gate == "make check"
    assert spec.stages[0].prompt == "costs $n dollars, $HOME stays"
    assert spec.stages[1].gate == "$UNDECLARED"
    over = parse_workflow(data, "f", {"kinds": "claude, codex", "n": "3", "fast": "yes"})
    assert over.stages[0].agent_kinds == ("claude", "codex") and over.stages[0].count == 3
    assert over.fail_fast
    with pytest.raises(UsageError, match="unknown parameter 'm'; its parameters: kinds, n"):
        parse_workflow(data, "f", {"m": 1})
    with pytest.raises(UsageError, match="parameter 'n' must be like 2, got 'lots'"):
        parse_workflow(data, "f", {"n": "lots"})


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_workflow(tmp_path / "missing.toml")
    with pytest.raises(UsageError, match=r"unknown extension: use \.toml, \.yaml, \.yml or \.json"):
        load_workflow(write(tmp_path, "w.ini", "x"))
    with pytest.raises(UsageError, match="top level must be a table"):
        load_workflow(write(tmp_path, "w.yaml", "- a\n- b\n"))
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_workflow(tmp_path / "bin.toml")
    with pytest.raises(UsageError, match="the workflow has no name"):
        parse_workflow({"stages": []}, "api")


def test_empty_yaml_is_an_empty_table() -> None:
    assert parse_text("", "yaml", "x") == {}
