"""`fleet merge STAGE` and `fleet merge WORKFLOW/STAGE` end to end: workflows run with
scripted agents and without --merge, then one stage's result is merged by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import Fleet, git
from merge_support import head

from e2e_workflows.workflow_support import (
    FIX,
    Agents,
    add_tests,
    configure,
    setup_agents,
    stage,
    start,
    wait_done,
    wait_stage,
)

pytestmark = pytest.mark.slow

# implement and docs each in their own worktree (both from main); polish continues docs'
# worktree and branch; check changes nothing.
PARTS = """
name = "parts"
task_prompt = "go"

[[stages]]
name = "implement"
agent = "scripted"
prompt = "{task_prompt}"

[[stages]]
name = "docs"
agent = "scripted"
depends_on = ["implement"]
prompt = "{task_prompt}"

[[stages]]
name = "polish"
agent = "scripted"
depends_on = ["docs"]
worktree = "inherit"
prompt = "{task_prompt}"

[[stages]]
name = "check"
agent = "scripted"
depends_on = ["polish"]
prompt = "{task_prompt}"
"""

# `broken` fails, so `after` is skipped; `pair`'s two workers write the same file.
BROKEN = """
name = "broken"
task_prompt = "go"

[[stages]]
name = "broken"
agent = "scripted"
prompt = "{task_prompt}"

[[stages]]
name = "after"
agent = "scripted"
depends_on = ["broken"]
prompt = "{task_prompt}"

[[stages]]
name = "pair"
agent = "scripted"
count = 2
prompt = "{task_prompt}"
"""


@pytest.fixture
def agents(fleet: Fleet) -> Agents:
    return setup_agents(fleet)


def parts(fleet: Fleet, agents: Agents, *, gate: bool = False) -> Path:
    agents.on("implement", 'echo impl > "impl-$WF.txt"\n')
    agents.on("docs", 'echo docs > "docs-$WF.txt"\n')
    wait = agents.gate("polish") if gate else ""
    agents.on("polish", wait + 'echo polished >> "docs-$WF.txt"\n')
    path = fleet.home.parent / "parts.toml"
    path.write_text(PARTS)
    return path


def subjects(fleet: Fleet) -> list[str]:
    """main's commits, newest first (first parents: a merge's own commits are not listed)."""
    return git(fleet.repo, "log", "--first-parent", "--format=%s", "main").splitlines()


def in_main(fleet: Fleet, path: str) -> bool:
    return path in git(fleet.repo, "ls-tree", "--name-only", "main").split()


def refused(fleet: Fleet, *args: str) -> str:
    """Run `fleet ARGS`, expect exit 2 with one line on stderr; that line."""
    proc = fleet.run(*args, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_merge_stage_brings_exactly_that_stages_work(fleet: Fleet, agents: Agents) -> None:
    wf = start(fleet, str(parts(fleet, agents, gate=True)))
    wid = wf["id"]
    before = head(fleet)
    # While polish writes in docs' worktree, merging docs is refused.
    wait_stage(fleet, wid, "polish", ("running",))
    busy = refused(fleet, "merge", "docs")
    assert "'polish'" in busy and "running" in busy, busy
    agents.release("polish")
    done = wait_done(fleet, wid)
    assert done["state"] == "succeeded", done
    assert head(fleet) == before and not in_main(fleet, f"impl-{wid}.txt")  # no --merge

    # Bad input: nothing merged.
    line = refused(fleet, "merge", "nosuch")
    assert "no worker or workflow stage named 'nosuch'" in line
    assert "fleet list" in line and "fleet workflow status" in line
    assert "'nosuch' does not exist" in refused(fleet, "merge", "docs", "--into", "nosuch")
    assert "has no stage 'nosuch'" in refused(fleet, "merge", f"{wid}/nosuch")
    assert head(fleet) == before

    # A stage that changed nothing: said so, exit 0.
    nothing = fleet.run("merge", "check")
    assert f"nothing to merge: stage check of workflow {wid} changed no files" in nothing.stdout
    assert head(fleet) == before

    # docs: its branch as it stands (polish continued it), and nothing of implement.
    merged = fleet.run("merge", "docs")
    assert f"merged wf-{wid}-docs" in merged.stdout, merged.stdout
    assert f"merged 1 of 1 worker of stage docs of workflow {wid} into main" in merged.stdout
    assert git(fleet.repo, "show", f"main:docs-{wid}.txt") == "docs\npolished\n"
    assert not in_main(fleet, f"impl-{wid}.txt")
    assert subjects(fleet) == [f"Merge branch 'flotilla/wf-{wid}-docs' into main", "initial"]
    after_docs = head(fleet)
    # polish shares that branch: already in.
    again = fleet.json("merge", "polish")
    assert again["kind"] == "stage" and again["targets"] == [f"wf-{wid}-polish"]
    assert again["merged"][0]["branch"] == f"flotilla/wf-{wid}-docs"
    assert not again["changed"] and head(fleet) == after_docs

    # implement by WORKFLOW/STAGE with an id prefix, squashed.
    data = fleet.json("merge", f"{wid[:6]}/implement", "--squash")
    assert data["workflow"] == wid and data["stage"] == "implement" and data["failed"] == []
    assert [m["name"] for m in data["merged"]] == [f"wf-{wid}-implement"]
    assert data["merged"][0]["files"] == [f"impl-{wid}.txt"] and data["strategy"] == "squash"
    assert subjects(fleet)[0] == f"Squash branch 'flotilla/wf-{wid}-implement' into main"
    assert (fleet.repo / f"impl-{wid}.txt").read_text() == "impl\n"  # the checkout followed


def test_stage_means_the_newest_workflow_and_a_worker_name_wins(
    fleet: Fleet, agents: Agents
) -> None:
    path = parts(fleet, agents)
    first = wait_done(fleet, start(fleet, str(path))["id"])
    second = wait_done(fleet, start(fleet, str(path))["id"])
    assert first["state"] == second["state"] == "succeeded"
    old, new = first["id"], second["id"]

    data = fleet.json("merge", "implement")
    assert data["workflow"] == new and data["merged"][0]["name"] == f"wf-{new}-implement"
    assert in_main(fleet, f"impl-{new}.txt") and not in_main(fleet, f"impl-{old}.txt")
    data = fleet.json("merge", f"{old}/implement")
    assert data["workflow"] == old and in_main(fleet, f"impl-{old}.txt")

    # A worker named like a stage is merged instead (its script writes docs-docs.txt).
    fleet.run("create", "docs", "-p", "write the docs")
    assert fleet.wait_terminal("docs")["docs"]["state"] == "succeeded"
    worker = fleet.json("merge", "docs")
    assert worker["kind"] == "worker" and worker["name"] == "docs"
    assert worker["files"] == ["docs-docs.txt"]
    assert not in_main(fleet, f"docs-{new}.txt") and not in_main(fleet, f"docs-{old}.txt")


def test_ranked_stage_merges_only_its_winner(fleet: Fleet, agents: Agents) -> None:
    add_tests(fleet)
    configure(fleet, agents.root, tests=True)
    agents.on("implement-1", "echo loser > loser.txt\n")  # the tests still fail
    agents.on("implement-2", FIX + "echo winner > winner.txt\n")
    wf = start(
        fleet,
        "compete",
        "-p",
        "make the tests pass",
        "--param",
        "agents=scripted",
        "--param",
        "count=2",
        "--param",
        "judge=shell",
    )
    done = wait_done(fleet, wf["id"])
    winner = f"wf-{wf['id']}-implement-2"
    assert done["state"] == "succeeded" and stage(done, "implement")["winner"] == winner, done
    before = head(fleet)
    assert "return 41" in git(fleet.repo, "show", "main:app.py")

    data = fleet.json("merge", "implement")
    assert data["targets"] == [winner] and [m["name"] for m in data["merged"]] == [winner]
    assert sorted(data["merged"][0]["files"]) == ["app.py", "winner.txt"]
    assert "return 42" in git(fleet.repo, "show", "main:app.py")
    assert in_main(fleet, "winner.txt") and not in_main(fleet, "loser.txt")
    log = git(fleet.repo, "log", "--first-parent", "--format=%s", f"{before}..main")
    assert log.splitlines() == [f"Merge branch 'flotilla/{winner}' into main"]


def test_failed_or_skipped_stage_is_refused_and_a_conflict_exits_1(
    fleet: Fleet, agents: Agents
) -> None:
    agents.on("broken", "exit 3\n")
    agents.on("pair-1", "echo A > same.txt\n")
    agents.on("pair-2", "echo B > same.txt\necho x > extra.txt\n")
    path = fleet.home.parent / "broken.toml"
    path.write_text(BROKEN)
    wf = start(fleet, str(path))
    done = wait_done(fleet, wf["id"])
    wid = wf["id"]
    assert done["state"] == "failed" and stage(done, "after")["state"] == "skipped", done
    before = head(fleet)

    line = refused(fleet, "merge", "broken")
    assert f"stage 'broken' of workflow {wid} is failed" in line
    assert "only a succeeded stage can be merged" in line
    assert f"stage 'after' of workflow {wid} is skipped" in refused(fleet, "merge", "after")
    assert "no workflow 'zzzz'" in refused(fleet, "merge", "zzzz/broken")
    assert head(fleet) == before

    # A succeeded stage of a failed workflow merges; a conflict is reported, exit 1.
    proc = fleet.run("merge", "pair", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"merged wf-{wid}-pair-1" in proc.stdout
    assert f"not merged wf-{wid}-pair-2" in proc.stdout and "same.txt" in proc.stdout
    assert f"merged 1 of 2 workers of stage pair of workflow {wid}" in proc.stdout
    assert git(fleet.repo, "show", "main:same.txt") == "A\n"
    assert not in_main(fleet, "extra.txt")
