"""Workflow control end to end: `when`, fail-fast, budgets, retries and gates, resume,
cancel and cleanup, and bad input refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import Fleet
from workflow_support import (
    FIX,
    Agents,
    add_tests,
    configure,
    stage,
    start,
    status,
    wait_done,
    wait_stage,
)

pytestmark = pytest.mark.slow


def write(fleet: Fleet, name: str, text: str) -> Path:
    path = fleet.home.parent / name
    path.write_text(text)
    return path


TEST_THEN_FIX = """
name = "test-then-fix"
task_prompt = "make the tests pass"

[[stages]]
name = "check"
agent = "scripted"
prompt = "{task_prompt}"

[[stages]]
name = "fix"
agent = "scripted"
depends_on = ["check"]
worktree = "inherit"
when = "check.outcome == 'tests_failed'"
prompt = "The tests failed: {stages.check.tests}. Fix them."
"""


def test_when_runs_fix_only_if_the_tests_failed(fleet: Fleet, agents: Agents) -> None:
    add_tests(fleet)
    configure(fleet, agents.root, tests=True)
    path = write(fleet, "fix.toml", TEST_THEN_FIX)
    agents.on("check", "echo checked > checked.txt\n")  # changes something; tests still fail
    agents.on("fix", FIX)
    failing = wait_done(fleet, start(fleet, str(path))["id"])
    assert failing["state"] == "succeeded", failing  # the failure was handled by `fix`
    assert stage(failing, "check")["state"] == "failed"
    assert stage(failing, "check")["outcome"] == "tests_failed"
    assert stage(failing, "fix")["state"] == "succeeded"
    fix_prompt = agents.prompt(f"wf-{failing['id']}-fix")
    assert "tests failed (exit 1, 1 passed, 1 failed)" in fix_prompt
    agents.on("check", FIX)  # now the first stage gets it right
    passing = wait_done(fleet, start(fleet, str(path))["id"])
    assert passing["state"] == "succeeded"
    assert stage(passing, "check")["state"] == "succeeded"
    assert stage(passing, "fix")["state"] == "skipped"
    assert f"wf-{passing['id']}-fix" not in agents.starts()


PARALLEL = """
name = "parallel"
task_prompt = "go"

[[stages]]
name = "bad"
agent = "scripted"
prompt = "{task_prompt}"

[[stages]]
name = "slow"
agent = "scripted"
prompt = "{task_prompt}"

[[stages]]
name = "after"
agent = "scripted"
depends_on = ["slow"]
prompt = "{task_prompt}"
"""


def test_fail_fast_cancels_the_rest(fleet: Fleet, agents: Agents) -> None:
    agents.on("bad", "exit 3\n")
    agents.on("slow", agents.gate("slow"))
    path = write(fleet, "parallel.toml", PARALLEL)
    watched = fleet.run("workflow", "run", str(path), "--fail-fast", "--watch", check=False)
    assert watched.returncode == 1  # --watch exits with the workflow's verdict
    assert "0/3 stages" not in watched.stdout and "3/3 stages" in watched.stdout
    assert "bad" in watched.stdout and "cancelled" in watched.stdout
    wf = fleet.json("workflow", "list")[0]
    done = status(fleet, wf["id"])
    assert done["state"] == "failed" and "stage 'bad' failed" in done["error"]
    assert stage(done, "bad")["state"] == "failed"
    slow = stage(done, "slow")
    assert slow["state"] == "cancelled" and "fail_fast after 'bad' failed" in slow["error"]
    assert slow["workers"][0]["state"] == "cancelled"
    assert stage(done, "after")["state"] == "cancelled"
    assert f"wf-{wf['id']}-after" not in agents.starts()
    assert fleet.workers()[f"wf-{wf['id']}-slow"]["state"] == "cancelled"


SEQUENCE = """
name = "sequence"
task_prompt = "go"
max_tokens = 2000

[[stages]]
name = "one"
agent = "scripted"
prompt = "{task_prompt}"

[[stages]]
name = "two"
agent = "scripted"
depends_on = ["one"]
prompt = "{task_prompt}"

[[stages]]
name = "three"
agent = "scripted"
depends_on = ["two"]
prompt = "{task_prompt}"
"""


def test_budget_stops_new_stages_and_resume_with_a_larger_one(fleet: Fleet, agents: Agents) -> None:
    path = write(fleet, "sequence.toml", SEQUENCE)
    wf = start(fleet, str(path))
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "failed"
    assert done["error"] == (
        "budget reached: 3000 tokens used of max_tokens 2000; no new stage starts"
    )
    assert [s["state"] for s in done["stages"]] == ["succeeded", "succeeded", "cancelled"]
    assert stage(done, "three")["error"].startswith("not started: budget reached")
    assert agents.starts() == [f"wf-{wf['id']}-one", f"wf-{wf['id']}-two"]
    refused = fleet.run("workflow", "resume", wf["id"], check=False)
    assert refused.returncode == 2 and "--max-tokens" in refused.stderr
    fleet.run("workflow", "resume", wf["id"], "--max-tokens", "10000")
    again = wait_done(fleet, wf["id"])
    assert again["state"] == "succeeded" and again["error"] is None
    assert again["input_tokens"] + again["output_tokens"] == 4500
    assert agents.starts()[2:] == [f"wf-{wf['id']}-three"]


RETRY = """
name = "retry"
task_prompt = "go"

[[stages]]
name = "build"
agent = "scripted"
prompt = "{task_prompt}"
retries = 1
gate = "test -f ok.txt"
"""


def test_a_failed_gate_fails_the_attempt_and_a_retry_passes(fleet: Fleet, agents: Agents) -> None:
    agents.on("build", "echo draft > draft.txt\n")
    agents.on("build-r2", "touch ok.txt\n")
    path = write(fleet, "retry.toml", RETRY)
    wf = start(fleet, str(path))
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    build = stage(done, "build")
    assert build["attempt"] == 2 and build["outcome"] == "success"
    assert [w["name"] for w in build["workers"]] == [
        f"wf-{wf['id']}-build",
        f"wf-{wf['id']}-build-r2",
    ]
    assert agents.starts() == [f"wf-{wf['id']}-build", f"wf-{wf['id']}-build-r2"]
    # Without a retry left, the gate's failure fails the stage and says why.
    agents.on("build-r2", "echo still not > draft.txt\n")
    failed = wait_done(fleet, start(fleet, str(path))["id"])
    assert failed["state"] == "failed"
    assert "gate `test -f ok.txt` failed" in stage(failed, "build")["error"]
    assert stage(failed, "build")["outcome"] == "tests_failed"


CHAIN = """
name = "chain"
task_prompt = "go"

[[stages]]
name = "first"
agent = "scripted"
prompt = "{task_prompt}"

[[stages]]
name = "second"
agent = "scripted"
depends_on = ["first"]
prompt = "after {stages.first.files}"

[[stages]]
name = "third"
agent = "scripted"
depends_on = ["second"]
prompt = "{task_prompt}"
"""


def test_resume_after_fixing_the_cause_runs_only_what_failed(fleet: Fleet, agents: Agents) -> None:
    agents.on("first", "echo one > one.txt\n")
    agents.on("second", "echo 'missing dependency' >&2; exit 1\n")
    path = write(fleet, "chain.toml", CHAIN)
    wf = start(fleet, str(path))
    failed = wait_done(fleet, wf["id"])
    assert failed["state"] == "failed"
    assert [s["state"] for s in failed["stages"]] == ["succeeded", "failed", "skipped"]
    shown = fleet.run("workflow", "status", wf["id"]).stdout
    assert "second" in shown and "failed" in shown
    agents.on("second", "echo two > two.txt\n")  # the user fixed the cause
    fleet.run("workflow", "resume", wf["id"])
    done = wait_done(fleet, wf["id"])
    assert done["state"] == "succeeded", done
    assert stage(done, "second")["attempt"] == 2
    assert agents.starts() == [
        f"wf-{wf['id']}-first",
        f"wf-{wf['id']}-second",
        f"wf-{wf['id']}-second-r2",
        f"wf-{wf['id']}-third",
    ]
    assert "after one.txt" in agents.prompt(f"wf-{wf['id']}-second-r2")
    refused = fleet.run("workflow", "resume", wf["id"], check=False)
    assert refused.returncode == 2 and "only a failed or cancelled" in refused.stderr


def test_cancel_stops_the_agents_and_cleanup_removes_the_worktrees(
    fleet: Fleet, agents: Agents
) -> None:
    agents.on("bad", "exit 3\n")
    agents.on("slow", agents.gate("never"))
    path = write(fleet, "parallel.toml", PARALLEL)
    wf = start(fleet, str(path))
    wait_stage(fleet, wf["id"], "bad", ("failed",))
    running = status(fleet, wf["id"])
    assert stage(running, "slow")["state"] == "running"
    refused = fleet.run("workflow", "cleanup", wf["id"], check=False)
    assert refused.returncode == 2 and "cancel it first" in refused.stderr
    cancelled = fleet.json("workflow", "cancel", wf["id"])
    assert cancelled["state"] == "cancelled"
    assert stage(cancelled, "slow")["workers"][0]["state"] == "cancelled"
    worktree = Path(stage(cancelled, "slow")["workers"][0]["worktree"])
    assert worktree.is_dir()  # kept for a look until cleanup
    assert [w["id"] for w in fleet.json("workflow", "list")] == [wf["id"]]
    cleaned = fleet.json("workflow", "cleanup", wf["id"], "--delete-branches")
    assert len(cleaned["removed"]) == 2 and not worktree.exists()
    assert fleet.workers() == {}


BROKEN = """
name = "broken"

[[stages]]
name = "a"
agent = "nosuchagent"
depends_on = ["b"]
prompt = "{task_prompt} {stages.zzz.summary}"

[[stages]]
name = "b"
agent = "scripted"
depends_on = ["a"]
prompt = "{stage_9_summary}"
"""


def test_bad_input_exits_2_with_every_problem_and_starts_nothing(
    fleet: Fleet, agents: Agents
) -> None:
    malformed = write(fleet, "malformed.toml", 'name = "x"\n[[stages]\nname = "a"\n')
    proc = fleet.run("workflow", "run", str(malformed), check=False)
    assert proc.returncode == 2 and "malformed.toml:2:" in proc.stderr
    broken = write(fleet, "broken.toml", BROKEN)
    proc = fleet.run("workflow", "run", str(broken), "-p", "task", check=False)
    assert proc.returncode == 2
    assert "has 4 problems:" in proc.stderr
    for expected in (
        "unknown agent kind 'nosuchagent'",
        "cycle: a -> b -> a",
        "{stages.zzz.summary} but there is no stage 'zzz'",
        "{stage_9_summary} but the workflow has only 2 stages",
    ):
        assert expected in proc.stderr
    proc = fleet.run("workflow", "run", "nosuchtemplate", check=False)
    assert proc.returncode == 2 and "unknown workflow 'nosuchtemplate'" in proc.stderr
    proc = fleet.run(
        "workflow", "run", "compete", "-p", "x", "--param", "agents=scripted",
        "--param", "judge=scripted", "--merge", "--into", "nosuch", check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "branch 'nosuch', which does not exist" in proc.stderr
    proc = fleet.run("workflow", "run", "compete", "--param", "colour=red", check=False)
    assert proc.returncode == 2 and "unknown parameter 'colour'" in proc.stderr
    proc = fleet.run("--json", "workflow", "run", str(broken), check=False)
    assert proc.returncode == 2
    assert fleet.json("workflow", "list") == [] and agents.starts() == []
    assert fleet.workers() == {}
