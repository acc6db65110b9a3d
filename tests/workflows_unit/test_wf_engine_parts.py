"""Pure parts of the workflow engine: stored specs and facts, worker names, tie-breaks without a
judge, and the live tree `fleet workflow status` draws."""

from __future__ import annotations

import pytest
from rich.console import Console

from flotilla.cli.workflow_render import result_view, workflow_tree
from flotilla.domain.ranking import Candidate, rank
from flotilla.domain.templating import StageFacts
from flotilla.domain.worker import TestReport as Report
from flotilla.orchestrator.workflow_codec import (
    facts_from_dict,
    facts_to_dict,
    merge_rows,
    ranked_from_dicts,
    ranked_to_dict,
    spec_from_dict,
    spec_to_dict,
)
from flotilla.orchestrator.workflow_context import worker_name
from flotilla.orchestrator.workflow_files import builtin_names, load_builtin
from flotilla.orchestrator.workflow_rank import first_by_name, reason_line


@pytest.mark.parametrize("name", builtin_names())
def test_specs_survive_the_store(name: str) -> None:
    spec = load_builtin(name)
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_facts_survive_the_store() -> None:
    facts = StageFacts(
        summary="did it",
        files=("a.py", "b.py"),
        diff_stat="2 files changed",
        next_steps=("test more",),
        status="success",
        tests="tests passed",
        result={"outcome": "success", "files": [{"path": "a.py"}]},
    )
    assert facts_from_dict(facts_to_dict(facts)) == facts


def test_worker_names_are_stable_and_valid() -> None:
    assert worker_name("0a1b2c3d", "implement", 0, 1, 1) == "wf-0a1b2c3d-implement"
    assert worker_name("0a1b2c3d", "implement", 2, 3, 1) == "wf-0a1b2c3d-implement-3"
    assert worker_name("0a1b2c3d", "implement", 2, 3, 2) == "wf-0a1b2c3d-implement-3-r2"
    assert worker_name("0a1b2c3d", "x", 0, 3, 1, judge=True) == "wf-0a1b2c3d-x-judge"
    longest = worker_name("0a1b2c3d", "s" * 40, 998, 999, 99, judge=False)
    assert len(longest) <= 64


def _tied() -> list[Candidate]:
    tests = Report(command="pytest", exit_code=0, passed=3, failed=0)
    return [
        Candidate("b-worker", "success", tests, diff_size=4, files_changed=1),
        Candidate("a-worker", "success", tests, diff_size=4, files_changed=1),
        Candidate("c-worker", "tests_failed", Report("pytest", 1, 1, 2), diff_size=1),
    ]


def test_a_tie_without_judge_keeps_the_first_by_name_and_says_so() -> None:
    decided = first_by_name(rank(_tied()), "no judge is configured")
    rows = decided["rows"]
    assert decided["winner"] == "a-worker" and decided["decided"]
    assert [(r["place"], r["name"]) for r in rows] == [
        (1, "a-worker"),
        (2, "b-worker"),
        (3, "c-worker"),
    ]
    assert "no judge is configured, so the first by name is kept" in rows[0]["reason"]
    assert rows[1]["reason"].startswith("tied with a-worker on every fact")
    assert rows[0]["facts"]["tests"]["passed"] == 3  # the facts it was ranked on are kept


def test_ranking_tables_round_trip_and_keep_their_facts() -> None:
    table = [ranked_to_dict(r) for r in rank(_tied())]
    back = ranked_from_dicts(table)
    assert [(r.place, r.name, r.reason) for r in back] == [
        (row["place"], row["name"], row["reason"]) for row in table
    ]
    merged = merge_rows(back, table)
    assert all(row["facts"] == old["facts"] for row, old in zip(merged, table, strict=True))


def test_reason_line_drops_the_winner_line() -> None:
    answer = "WINNER: a-worker\nIt handles the empty input,\n  and the other does not."
    assert reason_line(answer) == "It handles the empty input, and the other does not."
    assert reason_line("x" * 400).endswith("...")


SAMPLE = {
    "id": "0a1b2c3d",
    "name": "compete",
    "state": "running",
    "elapsed_s": 12.0,
    "input_tokens": 1200,
    "output_tokens": 300,
    "cost_usd": 0.25,
    "error": None,
    "progress": {"done": 1, "total": 2},
    "ranking": {
        "implement": {"rows": [{"place": 1, "name": "wf-0a1b2c3d-implement-2", "reason": "best"}]}
    },
    "stages": [
        {
            "name": "implement",
            "state": "succeeded",
            "agents": ["claude", "codex"],
            "attempt": 1,
            "outcome": "success",
            "winner": "wf-0a1b2c3d-implement-2",
            "error": None,
            "elapsed_s": 8.0,
            "input_tokens": 1200,
            "output_tokens": 300,
            "cost_usd": 0.25,
            "workers": [
                {
                    "name": f"wf-0a1b2c3d-implement-{n}",
                    "agent": "claude",
                    "role": "candidate",
                    "attempt": 1,
                    "state": "succeeded",
                    "outcome": "success",
                    "elapsed_s": 4.0,
                    "input_tokens": 600,
                    "output_tokens": 150,
                    "cost_usd": 0.125,
                    "part": None,
                }
                for n in (1, 2)
            ],
        },
        {
            "name": "review",
            "state": "running",
            "agents": ["codex"],
            "attempt": 1,
            "outcome": None,
            "winner": None,
            "error": None,
            "elapsed_s": 4.0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
            "workers": [],
        },
    ],
}


def test_the_status_tree_shows_stages_workers_ranking_and_progress() -> None:
    console = Console(record=True, width=140)
    console.print(workflow_tree(SAMPLE))
    text = console.export_text()
    assert "compete" in text and "0a1b2c3d" in text and "1.5k tok" in text
    assert "implement claude, codex x2" in text and "winner wf-0a1b2c3d-implement-2" in text
    assert "wf-0a1b2c3d-implement-1" in text and "1. wf-0a1b2c3d-implement-2: best" in text
    assert "review codex" in text and "running" in text
    assert "1/2 stages" in text


def test_the_result_view_shows_summaries_rankings_and_merges() -> None:
    data = {
        "id": "0a1b2c3d",
        "name": "compete",
        "state": "succeeded",
        "error": None,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": 0.0,
        "winner": "w2",
        "ranking": SAMPLE["ranking"],
        "merged": [
            {"branch": "flotilla/w2", "into": "main", "commit": "abc" * 10, "changed": True}
        ],
        "stages": {
            "implement": {
                "state": "succeeded",
                "outcome": "success",
                "winner": "w2",
                "summary": "Fixed it.",
                "files": ["app.py"],
                "tests": "tests passed",
            }
        },
    }
    console = Console(record=True, width=140)
    console.print(result_view(data))
    text = console.export_text()
    assert "Fixed it." in text and "files: app.py" in text and "ranking of implement" in text
    assert "merged flotilla/w2 -> main (abcabcabcabc)" in text and "winner: w2" in text
