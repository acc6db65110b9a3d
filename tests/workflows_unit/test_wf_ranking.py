"""Ranking by facts: tests, gates, then diff size; ties stay ties until a judge breaks them."""

from __future__ import annotations

import pytest

from flotilla.domain.errors import UsageError
from flotilla.domain.ranking import (
    Candidate,
    apply_judge,
    parse_judge_choice,
    rank,
    tie_break_prompt,
    winner,
)
from flotilla.domain.worker import TestReport as Report


def report(exit_code: int, passed: int | None = None, failed: int | None = None) -> Report:
    return Report(command="pytest", exit_code=exit_code, passed=passed, failed=failed)


BREAKER = Candidate("breaker", "tests_failed", report(1, 3, 5), diff_size=80, files_changed=4)
FIXER = Candidate("fixer", "success", report(0, 8, 0), diff_size=30, files_changed=2)
IDLE = Candidate("idle", "no_changes", report(1, 7, 1), diff_size=0, files_changed=0)


def test_the_fixer_wins_with_reasons() -> None:
    ranked = rank([BREAKER, IDLE, FIXER])
    assert [(r.place, r.name) for r in ranked] == [(1, "fixer"), (2, "idle"), (3, "breaker")]
    assert ranked[0].reason == "best: tests passed (8 passed); 30 lines changed in 2 files"
    assert ranked[1].reason == (
        "below fixer: tests failed (7 passed, 1 failed) while fixer's tests passed (8 passed)"
    )
    assert ranked[2].reason == (
        "below idle: tests failed (3 passed, 5 failed), idle did better: "
        "tests failed (7 passed, 1 failed)"
    )
    assert winner(ranked) == "fixer"
    assert all(r.tied_with == () for r in ranked)
    assert all("\n" not in r.reason for r in ranked)


def test_changing_something_beats_changing_nothing_when_tests_pass() -> None:
    idle = Candidate("idle", "no_changes", report(0, 8, 0))
    ranked = rank([idle, FIXER])
    assert [r.name for r in ranked] == ["fixer", "idle"]
    assert ranked[1].reason == "below fixer: changed nothing while fixer changed 2 files"


def test_smaller_diff_wins_all_else_equal() -> None:
    big = Candidate("big", "success", report(0, 8, 0), diff_size=300, files_changed=2)
    ranked = rank([big, FIXER])
    assert [r.name for r in ranked] == ["fixer", "big"]
    assert ranked[1].reason == "below fixer: larger diff (300 lines) than fixer (30 lines)"


def test_more_tests_passed_wins() -> None:
    fewer = Candidate("fewer", "success", report(0, 5, 0), diff_size=1, files_changed=1)
    assert [r.name for r in rank([fewer, FIXER])] == ["fixer", "fewer"]


def test_gates() -> None:
    lint_fails = Candidate("a", "success", report(0), gates=(("lint", False), ("mypy", True)))
    clean = Candidate(
        "b",
        "success",
        report(0),
        gates=(("lint", True), ("mypy", True)),
        diff_size=999,
        files_changed=9,
    )
    ranked = rank([lint_fails, clean])
    assert [r.name for r in ranked] == ["b", "a"]
    assert "all gates passed" in ranked[0].reason
    assert ranked[1].reason == "below b: gates failed (lint) where b failed fewer"


def test_a_run_that_did_not_finish_ranks_last() -> None:
    crashed = Candidate("crashed", "timed_out", report(0, 8, 0), diff_size=1, files_changed=1)
    ranked = rank([crashed, BREAKER])
    assert [r.name for r in ranked] == ["breaker", "crashed"]
    assert (
        ranked[1].reason == "below breaker: its run did not finish (timed_out) while breaker's did"
    )


def test_exit_code_only_when_counts_are_unknown() -> None:
    ok = Candidate("ok", "success", report(0), diff_size=5, files_changed=1)
    bad = Candidate("bad", "tests_failed", report(2), diff_size=5, files_changed=1)
    ranked = rank([bad, ok])
    assert [r.name for r in ranked] == ["ok", "bad"]
    assert ranked[1].reason == "below ok: tests failed (exit 2) while ok's tests passed (exit 0)"


def test_no_test_command_ranks_between_pass_and_fail() -> None:
    none = Candidate("none", "success", None, diff_size=5, files_changed=1)
    ok = Candidate("ok", "success", report(0), diff_size=5, files_changed=1)
    bad = Candidate("bad", "tests_failed", report(1), diff_size=5, files_changed=1)
    assert [r.name for r in rank([bad, none, ok])] == ["ok", "none", "bad"]


def test_a_tie_stays_a_tie() -> None:
    a = Candidate("a", "success", report(0, 8), diff_size=30, files_changed=2)
    b = Candidate("b", "success", report(0, 8), diff_size=30, files_changed=2)
    ranked = rank([b, a, BREAKER])
    assert [(r.place, r.name, r.tied_with) for r in ranked] == [
        (1, "a", ("b",)),
        (1, "b", ("a",)),
        (3, "breaker", ()),
    ]
    assert ranked[0].reason.endswith("; tied with b on every fact")
    assert winner(ranked) is None


def test_judge_breaks_a_tie_among_the_top_only() -> None:
    a = Candidate("a", "success", report(0, 8), diff_size=30, files_changed=2)
    b = Candidate("b", "success", report(0, 8), diff_size=30, files_changed=2)
    ranked = rank([a, b, BREAKER])
    judged = apply_judge(ranked, "b", "clearer code")
    assert [(r.place, r.name, r.tied_with) for r in judged] == [
        (1, "b", ()),
        (2, "a", ()),
        (3, "breaker", ()),
    ]
    assert judged[0].reason.endswith("the judge chose it over a: clearer code")
    assert judged[1].reason == "tied with b on facts; the judge chose b: clearer code"
    assert winner(judged) == "b"
    with pytest.raises(UsageError, match="not tied for first place"):
        apply_judge(ranked, "breaker")
    with pytest.raises(UsageError, match="not one of"):
        apply_judge(ranked, "ghost")


def test_judge_without_a_tie_changes_nothing() -> None:
    ranked = rank([FIXER, IDLE])
    assert apply_judge(ranked, "fixer") == ranked


def test_explicit_judge_overrides_the_facts() -> None:
    ranked = rank([BREAKER, IDLE, FIXER])
    judged = apply_judge(ranked, "breaker", "the only real fix", override=True)
    assert [(r.place, r.name) for r in judged] == [(1, "breaker"), (2, "fixer"), (3, "idle")]
    assert judged[0].reason == "chosen by the judge: the only real fix"


def test_names_must_be_unique() -> None:
    with pytest.raises(UsageError):
        rank([FIXER, FIXER])


def test_from_result() -> None:
    result = {
        "outcome": "success",
        "files": [{"path": "a"}, {"path": "b"}],
        "insertions": 10,
        "deletions": 4,
        "tests": {"command": "pytest", "exit_code": 0, "passed": 3, "failed": 0},
    }
    candidate = Candidate.from_result("w-A", result, [("lint", True)])
    assert candidate.diff_size == 14 and candidate.files_changed == 2
    assert candidate.tests is not None and candidate.tests.ok and candidate.tests.passed == 3
    assert candidate.gates == (("lint", True),)
    assert Candidate.from_result("w-B", {"outcome": "error"}).tests is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I compared them.\nWINNER: w-B\nBecause it is shorter.", "w-B"),
        ("**Winner:** `w-A` because tests", "w-A"),
        ('{"winner": "w-C", "why": "tests"}', "w-C"),
        ("w-A is clearly better than the others", "w-A"),
        ("w-A and w-B are both fine", None),
        ("WINNER: nobody", None),
    ],
)
def test_parse_judge_choice(text: str, expected: str | None) -> None:
    assert parse_judge_choice(text, ["w-A", "w-B", "w-C"]) == expected


def test_tie_break_prompt_lists_the_tied() -> None:
    a = Candidate("a", "success", report(0, 8), diff_size=30, files_changed=2)
    b = Candidate("b", "success", report(0, 8), diff_size=30, files_changed=2)
    prompt = tie_break_prompt("Add login", rank([a, b]), {"a": "diff of a"})
    assert "# Task\nAdd login" in prompt and "## a" in prompt and "## b" in prompt
    assert "diff of a" in prompt and "WINNER: <name>" in prompt
