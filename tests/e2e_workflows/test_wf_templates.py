"""Each built-in workflow template end to end: real git, the real CLI and daemon, scripted
agents."""

from __future__ import annotations

import pytest
from e2e_support import Fleet, git
from workflow_support import (
    BREAK,
    FIX,
    Agents,
    add_tests,
    configure,
    stage,
    start,
    wait_done,
)

pytestmark = pytest.mark.slow


def test_write_review_refine_works_on_one_branch_and_merges(fleet: Fleet, agents: Agents) -> None:
    agents.on("implement", FIX + "echo 'first draft' > notes.md\n")
    agents.on("refine", "echo 'after review' >> notes.md\n")
    wf = start(
        fleet,
        "write-review-refine",
        "-p",
        "make answer() return 42",
        "--param",
        "writer=scripted",
        "--param",
        "reviewer=scripted",
        "--merge",
    )
    assert wf["name"] == "write-review-refine" and len(wf["stages"]) == 3
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    names = {s["name"]: s["workers"][0] for s in done["stages"]}
    assert [s["state"] for s in done["stages"]] == ["succeeded"] * 3
    # One branch and one worktree for all three stages.
    assert {w["branch"] for w in names.values()} == {f"flotilla/wf-{wf['id']}-implement"}
    assert len({w["worktree"] for w in names.values()}) == 1
    # Each stage ran once, and each prompt carried its upstream's facts.
    assert agents.starts() == [f"wf-{wf['id']}-{s}" for s in ("implement", "review", "refine")]
    review_prompt = agents.prompt(f"wf-{wf['id']}-review")
    assert "make answer() return 42" in review_prompt
    assert "app.py" in review_prompt and "work done (attempt 1)" in review_prompt
    assert "- check the edge cases" in agents.prompt(f"wf-{wf['id']}-refine")
    # Totals: three agents of 1500 tokens and $0.01 each.
    assert done["input_tokens"] + done["output_tokens"] == 4500
    assert done["cost_usd"] == pytest.approx(0.03)
    # --merge brought the branch into main, with the uncommitted work.
    assert "return 42" in git(fleet.repo, "show", "main:app.py")
    assert git(fleet.repo, "show", "main:notes.md") == "first draft\nafter review\n"
    result = fleet.json("workflow", "result", wf["id"])
    assert result["merged"][0]["into"] == "main" and result["merged"][0]["changed"]
    # Each stage's facts are its own changes: the work before it was committed first.
    assert result["stages"]["implement"]["files"] == ["app.py", "notes.md"]
    assert result["stages"]["review"]["files"] == []
    assert result["stages"]["refine"]["files"] == ["notes.md"]
    assert [result["stages"][s]["cost_usd"] for s in ("implement", "review", "refine")] == [
        pytest.approx(0.01)
    ] * 3
    # cleanup removes the shared worktree once; the record stays.
    cleaned = fleet.json("workflow", "cleanup", wf["id"])
    assert sorted(cleaned["removed"]) == sorted(
        f"wf-{wf['id']}-{s}" for s in ("implement", "review", "refine")
    )
    assert fleet.workers() == {}
    assert not any(w["worktree"] and (fleet.repo / w["worktree"]).exists() for w in names.values())
    assert fleet.json("workflow", "result", wf["id"])["state"] == "succeeded"


def test_fanout_review_runs_parts_in_parallel_then_one_reviewer(
    fleet: Fleet, agents: Agents
) -> None:
    for index in (1, 2, 3):
        agents.on(f"work-{index}", f"echo 'part {index}' > part{index}.txt\n")
    wf = start(
        fleet,
        "fanout-review",
        "-p",
        "build the thing",
        "--param",
        "agents=scripted",
        "--param",
        "reviewer=scripted",
    )
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    work = stage(done, "work")
    assert [w["part"] for w in work["workers"]] == [
        "the implementation",
        "the tests",
        "the documentation",
    ]
    assert len({w["worktree"] for w in work["workers"]}) == 3  # each part its own worktree
    assert "Your part: the tests" in agents.prompt(f"wf-{wf['id']}-work-2")
    review = agents.prompt(f"wf-{wf['id']}-review")
    for index in (1, 2, 3):
        assert f"part{index}.txt" in review
        assert f"wf-{wf['id']}-work-{index}" in review  # each part's summary, labelled
    assert sorted(agents.starts()) == sorted(
        [f"wf-{wf['id']}-work-{i}" for i in (1, 2, 3)] + [f"wf-{wf['id']}-review"]
    )


def test_compete_the_candidate_that_fixes_the_tests_wins_and_is_merged(
    fleet: Fleet, agents: Agents
) -> None:
    add_tests(fleet)
    configure(fleet, agents.root, tests=True)
    agents.on("implement-1", BREAK)  # breaks the tests
    agents.on("implement-2", FIX)  # fixes them
    # implement-3 changes nothing
    wf = start(
        fleet,
        "compete",
        "-p",
        "make the tests pass",
        "--param",
        "agents=scripted",
        "--param",
        "count=3",
        "--param",
        "judge=shell",
        "--merge",
    )
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    fixer = f"wf-{wf['id']}-implement-2"
    assert done["winner"] == fixer and stage(done, "implement")["winner"] == fixer
    rows = done["ranking"]["implement"]["rows"]
    assert rows[0]["name"] == fixer
    assert rows[0]["place"] == 1 and rows[0]["reason"].startswith("best: tests passed (2 passed)")
    assert all(r["reason"] for r in rows) and {r["place"] for r in rows} == {1, 2, 3}
    assert rows[0]["facts"]["tests"]["exit_code"] == 0
    loser_reasons = " ".join(r["reason"] for r in rows[1:])
    assert "tests failed" in loser_reasons
    # No judge was needed: the facts decided.
    assert len(agents.starts()) == 3 and done["ranking"]["implement"]["judge"] is None
    # The losers' worktrees are gone, their branches kept; the winner is merged into main.
    assert set(fleet.workers()) == {fixer}
    branches = git(fleet.repo, "branch", "--list", "flotilla/*")
    assert f"wf-{wf['id']}-implement-1" in branches and f"wf-{wf['id']}-implement-3" in branches
    assert "return 42" in git(fleet.repo, "show", "main:app.py")
    assert fleet.json("workflow", "result", wf["id"])["merged"][0]["name"] == fixer
    shown = fleet.run("workflow", "result", wf["id"]).stdout
    assert "ranking of implement" in shown and fixer in shown


def test_compete_tie_is_broken_by_the_judge(fleet: Fleet, agents: Agents) -> None:
    agents.on("implement-1", "echo a > one.txt\n")
    agents.on("implement-2", "echo b > two.txt\n")  # the same facts: a tie
    agents.on("implement-judge", 'echo "WINNER: wf-$WF-implement-2"\necho "it is tidier"\n')
    wf = start(
        fleet,
        "compete",
        "-p",
        "add a file",
        "--param",
        "agents=scripted",
        "--param",
        "count=2",
        "--param",
        "judge=shell",
    )
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    second = f"wf-{wf['id']}-implement-2"
    assert done["winner"] == second
    record = done["ranking"]["implement"]
    assert record["judge"]["choice"] == second and record["judge"]["agent"] == "shell"
    assert "the judge chose it over" in record["rows"][0]["reason"]
    assert "it is tidier" in record["rows"][0]["reason"]
    judge_prompt = agents.prompt(f"wf-{wf['id']}-implement-judge")
    assert "WINNER: <name>" in judge_prompt and "two.txt" in judge_prompt
    assert sorted(agents.starts()) == sorted(
        [f"wf-{wf['id']}-implement-1", second, f"wf-{wf['id']}-implement-judge"]
    )
    assert set(fleet.workers()) == {second}  # the loser and the judge are removed


def test_judge_template_the_judges_choice_wins(fleet: Fleet, agents: Agents) -> None:
    agents.on("candidates-1", "echo small > a.txt\n")
    agents.on("candidates-2", "printf 'a\\nb\\nc\\n' > b.txt\n")  # larger diff: 2nd on facts
    agents.on("judge", 'echo "I compared both."\necho "WINNER: wf-$WF-candidates-2"\n')
    wf = start(
        fleet,
        "judge",
        "-p",
        "add a file",
        "--param",
        "agents=scripted",
        "--param",
        "count=2",
        "--param",
        "judge=shell",
    )
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    chosen = f"wf-{wf['id']}-candidates-2"
    assert done["winner"] == chosen and stage(done, "candidates")["winner"] == chosen
    rows = done["ranking"]["candidates"]["rows"]
    assert rows[0]["name"] == chosen and rows[0]["reason"].startswith("chosen by the judge")
    assert rows[1]["place"] == 2 and rows[1]["facts"]["diff_size"] == 1
    prompt = agents.prompt(f"wf-{wf['id']}-judge")
    assert f"wf-{wf['id']}-candidates-1" in prompt and chosen in prompt  # the results' JSON
    assert set(fleet.workers()) == {chosen, f"wf-{wf['id']}-judge"}
