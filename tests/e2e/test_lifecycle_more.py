"""More of a worker's life: nested spawning, repair, following logs, allowed repositories."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import psutil
from e2e_support import FLEET, Fleet, git
from test_lifecycle import scripted


def test_agent_running_fleet_creates_a_child_one_level_deeper(fleet: Fleet) -> None:
    child_script = fleet.script("child", '[[steps]]\naction = "say"\ntext = "child here"\n')
    script = f"""
[[steps]]
action = "write"
path = "plan.txt"
content = "plan"
[[steps]]
action = "commit"
message = "plan"
[[steps]]
action = "run"
command = "{sys.executable} -m flotilla.cli create kid -p 'help me' --agent scripted"
check = true
[[steps]]
action = "write"
path = "parent.txt"
content = "x"
"""
    scripted(fleet, script, extra="[limits]\nmax_spawn_depth = 1\n")
    fleet.run("create", "parent", "-p", "spawn a child", env={"FLOTILLA_SCRIPT": str(child_script)})
    workers = fleet.wait_terminal("parent", "kid")
    parent, kid = workers["parent"], workers["kid"]
    assert parent["state"] == "succeeded", parent
    assert kid["depth"] == 1 and kid["parent"] == parent["id"]
    # the child branched from the parent's worktree HEAD (its commit), not from main
    parent_head = git(fleet.repo, "rev-parse", "flotilla/parent").strip()
    assert kid["settings"]["base_commit"] == parent_head
    assert parent_head != git(fleet.repo, "rev-parse", "main").strip()


def test_repair_reconciles_store_with_reality(fleet: Fleet) -> None:
    scripted(fleet, '[[steps]]\naction = "sleep"\nseconds = 60\nheartbeat = 1\n')
    fleet.run("multi", "gone:x", "lost:y")
    workers = fleet.wait(
        lambda ws: all(w["state"] == "running" for w in ws.values()), what="running"
    )
    fleet.run("daemon", "stop")
    # the agent of "gone" dies without leaving its exit status; "lost" loses its worktree
    gone = workers["gone"]
    shim = psutil.Process(gone["pid"])
    for proc in [*shim.children(recursive=True), shim]:
        with contextlib.suppress(psutil.NoSuchProcess):  # a child may end on its own
            proc.kill()
    attempt = Path(gone["run_dir"]) / "attempt-1"
    (attempt / "exit").unlink(missing_ok=True)
    git(fleet.repo, "worktree", "remove", "--force", workers["lost"]["worktree"])
    out = fleet.json("list", "--repair")
    text = "\n".join(out)
    assert "lost: worktree missing" in text
    after = fleet.workers()
    assert "lost" not in after
    assert after["gone"]["state"] == "failed"
    fleet.run("kill", "gone")


def test_logs_follow_ends_when_the_agent_ends(fleet: Fleet) -> None:
    script = """
[[steps]]
action = "say"
text = "step one"
[[steps]]
action = "sleep"
seconds = 1.5
[[steps]]
action = "say"
text = "step two"
"""
    scripted(fleet, script)
    fleet.run("create", "chatty", "-p", "x")
    proc = subprocess.run(
        [*FLEET, "logs", "chatty", "-f"],
        cwd=fleet.repo,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "step one" in proc.stdout and "step two" in proc.stdout
    assert proc.stdout.index("step one") < proc.stdout.index("step two")


def test_repository_outside_allowed_list_is_refused(fleet: Fleet) -> None:
    scripted(fleet, '[[steps]]\naction = "say"\ntext = "x"\n')
    env = {"FLOTILLA_PROJECT__ALLOWED_REPOSITORIES": '["/nowhere/*"]'}
    proc = fleet.run("create", "x", "-p", "x", env=env, check=False)
    assert proc.returncode == 2 and "allowed_repositories" in proc.stderr
    assert fleet.workers() == {}
