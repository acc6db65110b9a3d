"""Interactive stages: the `interactive` flag from the file through the store to the worker
request (candidates only), and the attach hint `fleet workflow status` draws."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from flotilla.cli.workflow_render import workflow_tree
from flotilla.domain import dag
from flotilla.domain.errors import UsageError
from flotilla.domain.workflow import StageState
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.workflow_codec import spec_from_dict, spec_to_dict
from flotilla.orchestrator.workflow_context import Deps, RunContext
from flotilla.orchestrator.workflow_files import parse_text, parse_workflow
from flotilla.orchestrator.workflow_stages import _request
from flotilla.store import open_store
from flotilla.store.workflow_rows import JUDGE, StageRow, StageWorkerRow, WorkflowRow

AGENTS = {"claude", "codex", "scripted"}

TOML = """\
name = "write-review"
task_prompt = "write it"

[[stages]]
name = "write"
agent = "claude"
prompt = "{task_prompt}"

[[stages]]
name = "review"
agent = "claude"
depends_on = ["write"]
worktree = "inherit"
interactive = true
prompt = "Review: {stages.write.summary}"
"""

YAML = """\
name: write-review
task_prompt: write it
stages:
  - name: write
    agent: claude
    prompt: "{task_prompt}"
  - name: review
    agent: claude
    depends_on: [write]
    worktree: inherit
    interactive: true
    prompt: "Review: {stages.write.summary}"
"""


@pytest.mark.parametrize(("fmt", "text"), [("toml", TOML), ("yaml", YAML)])
def test_the_flag_parses_and_defaults_to_false(fmt: str, text: str) -> None:
    spec = parse_workflow(parse_text(text, fmt, f"wf.{fmt}"), f"wf.{fmt}")
    assert spec.stage("review").interactive is True
    assert spec.stage("write").interactive is False
    assert dag.validate(spec, AGENTS) == []


def test_the_flag_round_trips_through_json_too() -> None:
    data = parse_text(TOML, "toml", "wf.toml")
    again = parse_workflow(parse_text(json.dumps(data), "json", "wf.json"), "wf.json")
    assert again == parse_workflow(data, "wf.toml")


def test_a_flag_that_is_not_a_boolean_is_one_clear_line() -> None:
    data = parse_text(TOML.replace("interactive = true", 'interactive = "yes"'), "toml", "wf")
    with pytest.raises(UsageError, match=r"stage 'review': interactive must be true or false"):
        parse_workflow(data, "wf.toml")


def test_a_misspelt_key_is_named_with_the_right_one() -> None:
    data = parse_text(TOML.replace("interactive = true", "interactve = true"), "toml", "wf")
    with pytest.raises(UsageError, match="did you mean 'interactive'"):
        parse_workflow(data, "wf.toml")


def test_a_stored_spec_keeps_the_flag_and_an_older_one_reads_as_headless() -> None:
    spec = parse_workflow(parse_text(TOML, "toml", "wf.toml"), "wf.toml")
    stored = json.loads(json.dumps(spec_to_dict(spec)))  # what the store keeps
    assert stored["stages"][1]["interactive"] is True
    back = spec_from_dict(stored)
    assert back == spec and back.stage("review").interactive is True
    for stage in stored["stages"]:  # a workflow started before the field existed
        del stage["interactive"]
    assert spec_from_dict(stored).stage("review").interactive is False


def test_interactive_fan_out_rank_and_judge_are_valid() -> None:
    # Each interactive worker is its own tmux session and ends on its own; ranking uses
    # facts (git, tests, gates), not how the agent ran. Nothing to refuse.
    text = TOML.replace('worktree = "inherit"\n', 'count = 3\nrank = true\njudge = "codex"\n')
    spec = parse_workflow(parse_text(text, "toml", "wf.toml"), "wf.toml")
    assert spec.stage("review").worker_count == 3
    assert dag.validate(spec, AGENTS) == []


# -- the worker request ---------------------------------------------------------------


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[Deps]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield Deps.of(FleetService(store, tmp_path / "home"))
    finally:
        store.close()


def _context(interactive: bool) -> RunContext:
    text = TOML.replace('worktree = "inherit"\n', 'rank = true\njudge = "codex"\ncount = 2\n')
    if not interactive:
        text = text.replace("interactive = true\n", "")
    spec = parse_workflow(parse_text(text, "toml", "wf.toml"), "wf.toml")
    wf = WorkflowRow(id="0a1b2c3d", name=spec.name, project="/repo", spec=spec_to_dict(spec))
    stages = {
        s.name: StageRow(wf.id, s.name, i, state=StageState.RUNNING, attempt=1)
        for i, s in enumerate(spec.stages)
    }
    return RunContext(wf, spec, stages, planned=[])


def _row(role: str, name: str) -> StageWorkerRow:
    agent = "codex" if role == JUDGE else "claude"
    return StageWorkerRow("0a1b2c3d", "review", 1, 0, name, agent, role=role)


def test_candidates_of_an_interactive_stage_run_interactively_its_judge_does_not(
    deps: Deps,
) -> None:
    deps.save_env("0a1b2c3d", {"PATH": "/usr/bin:/bin"})
    ctx = _context(interactive=True)
    candidate = _request(deps, ctx, _row("candidate", "wf-0a1b2c3d-review-1"), "review it")
    judge = _request(deps, ctx, _row(JUDGE, "wf-0a1b2c3d-review-judge"), "pick one")
    assert candidate.interactive is True
    assert judge.interactive is False
    headless = _request(deps, _context(interactive=False), _row("candidate", "w"), "review it")
    assert headless.interactive is False


# -- what `fleet workflow status` draws -----------------------------------------------


def _status(worker_state: str, stage_state: str = "running") -> dict[str, Any]:
    worker = {
        "name": "wf-0a1b2c3d-review",
        "agent": "claude",
        "role": "candidate",
        "attempt": 1,
        "state": worker_state,
        "outcome": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "part": None,
        "interactive": True,
        "tmux_session": "flotilla-wf-0a1b2c3d-review-abc123",
    }
    stage = {
        "name": "review",
        "state": stage_state,
        "agents": ["claude"],
        "interactive": True,
        "attempt": 1,
        "outcome": None,
        "winner": None,
        "error": None,
        "elapsed_s": 4.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "workers": [worker],
    }
    return {
        "id": "0a1b2c3d",
        "name": "write-review",
        "state": "running",
        "elapsed_s": 5.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "error": None,
        "progress": {"done": 1, "total": 2},
        "ranking": {},
        "stages": [stage],
    }


def _draw(data: dict[str, Any]) -> str:
    console = Console(record=True, width=200)
    console.print(workflow_tree(data))
    return console.export_text()


@pytest.mark.parametrize("state", ["starting", "running", "waiting"])
def test_a_live_interactive_worker_shows_how_to_attach(state: str) -> None:
    text = _draw(_status(state))
    assert "review claude interactive" in text
    assert "attach: fleet attach wf-0a1b2c3d-review" in text
    assert "tmux session flotilla-wf-0a1b2c3d-review-abc123" in text


@pytest.mark.parametrize("state", ["queued", "succeeded", "failed"])
def test_no_attach_hint_before_the_session_exists_or_after_it_ended(state: str) -> None:
    text = _draw(_status(state, "succeeded" if state == "succeeded" else "running"))
    assert "review claude interactive" in text
    assert "fleet attach" not in text
