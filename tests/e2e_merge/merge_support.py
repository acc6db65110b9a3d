"""Scripted agents for the merge tests: real git, the real CLI and daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e_support import Fleet, git

# Commits one file, leaves another uncommitted: a merge or a PR must carry both.
COMMIT_AND_LEAVE = """
[[steps]]
action = "write"
path = "feature.txt"
content = "done\\n"
[[steps]]
action = "commit"
message = "add feature"
[[steps]]
action = "write"
path = "notes.md"
content = "uncommitted\\n"
[[steps]]
action = "summary"
text = "Added the feature."
"""

# The prompt is the shell command the agent runs; then it commits what it did.
RUN_PROMPT = """
[[steps]]
action = "run"
command = "{prompt}"
check = true
[[steps]]
action = "commit"
message = "work"
[[steps]]
action = "summary"
text = "Ran the task."
"""


def scripted(fleet: Fleet, script: str, extra: str = "") -> None:
    """As tests/e2e/test_lifecycle.py: the scripted agent is the project's default."""
    path = fleet.script("agent", script)
    (fleet.repo / ".flotilla").mkdir(exist_ok=True)
    (fleet.repo / ".flotilla" / "config.toml").write_text(
        f'[project]\ndefault_agent = "scripted"\n{extra}\n[agents.scripted]\nscript = "{path}"\n'
    )


def multi(fleet: Fleet, *tasks: str) -> str:
    """Start one worker per NAME:command task in one batch; its batch id."""
    created: list[dict[str, Any]] = fleet.json("multi", *tasks)
    batch = created[0]["batch"]
    assert batch and all(w["batch"] == batch for w in created)
    return str(batch)


def head(fleet: Fleet, ref: str = "main") -> str:
    return git(fleet.repo, "rev-parse", ref).strip()


def status(path: Path) -> str:
    return git(path, "status", "--porcelain")
