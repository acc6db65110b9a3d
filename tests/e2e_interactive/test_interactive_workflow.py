"""An interactive workflow stage end to end: the real CLI and daemon, the stage's agent in a
real tmux pane that a person (here the test) answers before the workflow goes on.

`write` runs headless and commits a draft; `review` inherits its worktree and runs
interactively: it asks a question, waits for a typed answer (`fleet prompt`), then
commits its review and exits, which ends the stage.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from e2e_support import Fleet, git
from interactive_support import (
    details,
    pane,
    scripted_interactive,
    sessions,
    tmux,
    toml_string,
    wait_for,
    wait_state,
)

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

WRITE = """
[[steps]]
action = "write"
path = "draft.md"
content = "# Draft\\n"
[[steps]]
action = "commit"
message = "draft"
[[steps]]
action = "say"
text = "Drafted draft.md."
"""

# The pause before the question keeps clear of the hook start-up race (see
# test_interactive_tmux); the one after the answer lets `fleet prompt` see its echo.
REVIEW = """
[[steps]]
action = "say"
text = "read the draft"
[[steps]]
action = "sleep"
seconds = 1.0
[[steps]]
action = "wait_input"
text = "approve the draft?"
seconds = 60
[[steps]]
action = "write"
path = "review.md"
content = "approved by a person\\n"
[[steps]]
action = "commit"
message = "review"
[[steps]]
action = "sleep"
seconds = 2.0
[[steps]]
action = "summary"
text = "Reviewed: approved."
"""

WORKFLOW = """
name = "write-then-review"
task_prompt = "write the draft"

[[stages]]
name = "write"
agent = "scripted"
prompt = "{{task_prompt}}"

[[stages]]
name = "review"
agent = "scripted"
depends_on = ["write"]
worktree = "inherit"
interactive = true
flags = ["--script", {review}]
prompt = "Review the draft: {{stages.write.summary}}"
"""

TERMINAL = ("succeeded", "failed", "cancelled")


def start(fleet: Fleet) -> str:
    """Both agents' scripts in place, the workflow started (not watched): its id."""
    scripted_interactive(fleet, WRITE)  # the default script: the headless `write` stage
    review = fleet.script("review", REVIEW)
    path = fleet.home.parent / "write-then-review.toml"
    path.write_text(WORKFLOW.format(review=toml_string(str(review))))
    started: dict[str, Any] = fleet.json("workflow", "run", str(path))
    return str(started["id"])


def status(fleet: Fleet, workflow_id: str) -> dict[str, Any]:
    data: dict[str, Any] = fleet.json("workflow", "status", workflow_id)
    return data


def stage(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["stages"] if s["name"] == name)
    return found


def wait_done(fleet: Fleet, workflow_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    data = status(fleet, workflow_id)
    while data["state"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow did not end: {json.dumps(data, indent=1)}")
        time.sleep(0.2)
        data = status(fleet, workflow_id)
    return data


def test_review_stage_runs_in_tmux_and_ends_when_its_agent_exits(fleet: Fleet) -> None:
    workflow_id = start(fleet)
    name = f"wf-{workflow_id}-review"
    worker = wait_state(fleet, name, "waiting", timeout=60)  # asked its question

    data = status(fleet, workflow_id)
    write, review = stage(data, "write"), stage(data, "review")
    assert write["state"] == "succeeded" and write["interactive"] is False
    assert write["workers"][0]["interactive"] is False
    assert write["workers"][0]["tmux_session"] is None
    assert review["state"] == "running" and review["interactive"] is True
    shown = review["workers"][0]
    assert shown["interactive"] is True
    session = details(fleet, name)["tmux_session"]
    assert shown["tmux_session"] == session
    assert sessions(fleet) == [session]  # only the review runs in tmux
    assert "approve the draft?" in pane(fleet, session)
    tree = fleet.run("workflow", "status", workflow_id, env={"COLUMNS": "240"}).stdout
    assert f"attach: fleet attach {name}" in tree, tree

    time.sleep(1.0)  # several engine rounds: a waiting agent does not end the stage
    assert stage(status(fleet, workflow_id), "review")["state"] == "running"
    assert fleet.json("prompt", name, "looks good") == {"status": "delivered"}
    wait_for(
        lambda: "received input: looks good" in pane(fleet, session),
        "the agent to read the typed answer",
        timeout=10,
    )

    done = wait_done(fleet, workflow_id)
    assert done["state"] == "succeeded", done
    review = stage(done, "review")
    assert review["state"] == "succeeded" and review["outcome"] == "success", review
    assert review["workers"][0]["state"] == "succeeded"
    wait_for(lambda: session not in sessions(fleet), "the review's tmux session to close")

    facts = fleet.json("workflow", "result", workflow_id)["stages"]["review"]
    assert facts["files"] == ["review.md"]  # from git: its own change, not the draft's
    assert facts["summary"] == "Reviewed: approved."
    branch = worker["branch"]
    assert branch == stage(done, "write")["workers"][0]["branch"]  # inherited
    assert git(fleet.repo, "show", f"{branch}:review.md") == "approved by a person\n"
    assert git(fleet.repo, "log", "--format=%s", branch).split()[:2] == ["review", "draft"]
    tree = fleet.run("workflow", "status", workflow_id, env={"COLUMNS": "240"}).stdout
    assert "fleet attach" not in tree


def test_closing_the_session_before_the_agent_finishes_fails_the_stage(fleet: Fleet) -> None:
    # A person who closes the pane instead of letting the agent finish: the agent dies
    # without an exit status, and the stage says so instead of waiting forever.
    workflow_id = start(fleet)
    name = f"wf-{workflow_id}-review"
    worker = wait_state(fleet, name, "waiting", timeout=60)
    session = details(fleet, name)["tmux_session"]
    assert tmux(fleet, "kill-session", "-t", f"={session}") == ""

    done = wait_done(fleet, workflow_id)
    assert done["state"] == "failed", done
    assert stage(done, "write")["state"] == "succeeded"
    review = stage(done, "review")
    assert review["state"] == "failed" and review["workers"][0]["state"] == "failed", review
    assert "without an exit status" in (review["error"] or ""), review
    missing = git(fleet.repo, "ls-tree", "--name-only", worker["branch"])
    assert "review.md" not in missing.split() and "draft.md" in missing.split()
