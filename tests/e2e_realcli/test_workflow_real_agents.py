"""`write-review-refine` end to end across the real codex and claude CLIs.

`fleet workflow run write-review-refine --param writer=codex --param reviewer=claude`:
codex writes calc.py with a bug, claude reviews it and names the fix, codex applies the
fix on the same branch, and the workflow merges the branch. Each CLI talks to its own
fake model API on 127.0.0.1; the CLIs, their tools, git, the daemon and the workflow
engine are real. The fakes' request logs show what each stage's prompt really held.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_support import Fleet, git
from realfleet import raw_events
from realworkflow import (
    Route,
    calls_with,
    codex_cost,
    configure_agents,
    describe_workflow,
    routed_servers,
    user_text,
)

from fakemodels import FinalText, Script, WriteFile
from realcli.drive import require

pytestmark = [pytest.mark.real_cli, pytest.mark.slow, pytest.mark.timeout(120)]

TASK = "Add a mean(xs) helper for the weekly report; it's due Monday."
BUGGY = "def mean(xs):\n    return sum(xs) / len(xs)\n"
FIXED = "def mean(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n"
TEST = "from calc import mean\n\n\ndef test_empty():\n    assert mean([]) == 0.0\n"
# Neither the task nor the summary names the file: only {stages.implement.files} does.
WRITE_SUMMARY = "Added mean() as asked (write-note-91c2)."
# The refine stage's fake answers requests holding this marker: only the review's own
# words, passed on through the refine prompt, route codex to the fixing script.
REVIEW_MARKER = "review-note-7f3a"
REVIEW = (
    f"{REVIEW_MARKER}: calc.py mean() raises ZeroDivisionError on an empty list.\n\n"
    "Next steps:\n- return 0.0 when xs is empty\n- add test_calc.py covering it"
)
REFINE_SUMMARY = "mean() returns 0.0 for an empty list; added test_calc.py."

WRITE = Script(
    steps=(
        WriteFile("calc.py", BUGGY, input_tokens=1000, output_tokens=200),
        FinalText(WRITE_SUMMARY, input_tokens=1100, output_tokens=50),
    )
)
REFINE = Script(
    steps=(
        WriteFile("calc.py", FIXED, input_tokens=1300, output_tokens=220),
        WriteFile("test_calc.py", TEST, input_tokens=1400, output_tokens=120),
        FinalText(REFINE_SUMMARY, input_tokens=1500, output_tokens=40),
    )
)
REVIEWS = Script(steps=(FinalText(REVIEW, input_tokens=2000, output_tokens=300),))
STAGES = ("implement", "review", "refine")
AGENTS = {"implement": "codex", "review": "claude", "refine": "codex"}


def _stage(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["stages"] if s["name"] == name)
    return found


def _worker(data: dict[str, Any], name: str) -> dict[str, Any]:
    (worker,) = _stage(data, name)["workers"]
    assert isinstance(worker, dict)
    return worker


def test_write_review_refine_across_codex_and_claude(fleet: Fleet) -> None:
    require("codex")
    require("claude")
    base = git(fleet.repo, "rev-parse", "HEAD").strip()
    routes = {
        "codex": [Route(REVIEW_MARKER, REFINE), Route("", WRITE)],
        "claude": [Route("", REVIEWS)],
    }
    with routed_servers(routes) as fakes:
        configure_agents(fleet, fakes, default="codex")
        ran = fleet.run(
            *("--json", "workflow", "run", "write-review-refine", "-p", TASK),
            *("--param", "writer=codex", "--param", "reviewer=claude", "--merge", "--watch"),
            check=False,
            timeout=100,
        )
        data: dict[str, Any] = json.loads(ran.stdout) if ran.stdout.startswith("{") else {}
        assert ran.returncode == 0 and data.get("state") == "succeeded", (
            f"exit {ran.returncode}, stderr: {ran.stderr}\n{describe_workflow(fleet, data)}"
        )
        review_calls = [c for c in fakes["claude"].model_calls() if c.body.get("tools")]
        codex_calls = fakes["codex"].model_calls()
        refine_calls = calls_with(fakes["codex"], REVIEW_MARKER)

    result = fleet.json("workflow", "result", data["id"])
    stages = result["stages"]

    # Every stage ran the agent the parameters chose, and succeeded.
    for name in STAGES:
        stage = _stage(data, name)
        outcome = "no_changes" if name == "review" else "success"  # the reviewer edits nothing
        assert (stage["state"], stage["outcome"]) == ("succeeded", outcome), stage
        assert stage["agents"] == [AGENTS[name]] and _worker(data, name)["agent"] == AGENTS[name]

    # Templating passed real data on: claude's prompt held codex's summary and files...
    assert review_calls, "claude never called its model"
    review_prompt = user_text(review_calls[0])
    diff_stat = stages["implement"]["diff_stat"]
    for expected in (TASK, WRITE_SUMMARY, "calc.py", diff_stat):
        assert expected in review_prompt, f"{expected!r} not in the review prompt"
    assert diff_stat.startswith("1 file changed"), diff_stat
    # ...and codex's refine prompt held claude's review (it is what routed codex here).
    # Two model calls wrote, three refined: codex never replayed the write script.
    assert (len(codex_calls), len(refine_calls)) == (5, 3), [user_text(c) for c in codex_calls]
    refine_prompt = user_text(refine_calls[0])
    assert REVIEW in refine_prompt and TASK in refine_prompt
    # The review's "Next steps" list, read from claude's final words, reached codex too.
    assert (
        "- return 0.0 when xs is empty\n- add test_calc.py covering it"
        in refine_prompt.split("Next steps the reviewer asked for:")[1]
    )

    # One worktree and branch for all three stages (worktree = "inherit").
    places = {
        name: (_worker(data, name)["worktree"], _worker(data, name)["branch"]) for name in STAGES
    }
    assert len(set(places.values())) == 1, places
    worktree, branch = places["implement"]
    # codex tells its model its cwd: the refine turn ran in the write stage's worktree.
    assert f"<cwd>{worktree}</cwd>" in refine_prompt, refine_prompt[:2000]

    # The branch, merged into main in the real repository, holds both stages' edits.
    (merge,) = data["merged"]
    assert merge["branch"] == branch and merge["name"] == _worker(data, "refine")["name"], merge
    assert git(fleet.repo, "show", "main:calc.py") == FIXED
    assert git(fleet.repo, "show", "main:test_calc.py") == TEST
    changed = git(fleet.repo, "diff", "--name-only", base, "main").split()
    assert sorted(changed) == ["calc.py", "test_calc.py"]
    assert git(fleet.repo, "merge-base", "--is-ancestor", branch, "main") == ""

    # Tokens and cost per stage are the model's own figures; the total is their sum.
    write_in, write_out = WRITE.usage_until(2)
    refine_in, refine_out = REFINE.usage_until(3)
    review_in, review_out = REVIEWS.usage_until(1)
    (claude_result,) = [
        e for e in raw_events(fleet, _worker(data, "review")["name"]) if e.get("type") == "result"
    ]
    assert claude_result["total_cost_usd"] > 0
    expected = {
        "implement": (write_in, write_out, codex_cost(write_in, write_out)),
        "review": (review_in, review_out, claude_result["total_cost_usd"]),
        "refine": (refine_in, refine_out, codex_cost(refine_in, refine_out)),
    }
    for name, (tokens_in, tokens_out, cost) in expected.items():
        stage = _stage(data, name)
        assert (stage["input_tokens"], stage["output_tokens"]) == (tokens_in, tokens_out), name
        assert stage["cost_usd"] == pytest.approx(cost, abs=1e-9) and cost > 0, name
    total_in = sum(v[0] for v in expected.values())
    total_out = sum(v[1] for v in expected.values())
    total_cost = sum(v[2] for v in expected.values())
    assert (data["input_tokens"], data["output_tokens"]) == (total_in, total_out)
    assert data["cost_usd"] == pytest.approx(total_cost, abs=1e-9)

    # `fleet workflow result --json` reports the same: summaries, files, totals.
    assert result["state"] == "succeeded" and result["succeeded"] == list(STAGES)
    assert (result["input_tokens"], result["output_tokens"]) == (total_in, total_out)
    assert result["cost_usd"] == pytest.approx(total_cost, abs=1e-9)
    assert stages["implement"]["summary"] == WRITE_SUMMARY
    assert stages["review"]["summary"] == REVIEW
    assert stages["refine"]["summary"] == REFINE_SUMMARY
    # Each stage's files are its own: the review changed none.
    assert stages["implement"]["files"] == ["calc.py"]
    assert stages["review"]["files"] == []
    assert sorted(stages["refine"]["files"]) == ["calc.py", "test_calc.py"]
    for name, (tokens_in, tokens_out, cost) in expected.items():
        assert (stages[name]["input_tokens"], stages[name]["output_tokens"]) == (
            tokens_in,
            tokens_out,
        )
        assert stages[name]["cost_usd"] == pytest.approx(cost, abs=1e-9)
