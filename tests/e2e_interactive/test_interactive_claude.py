"""The real Claude Code TUI in a Flotilla tmux pane, against the fake Anthropic API.

Only the model is fake: the `claude` binary, its terminal UI, its permission prompt
and its own hooks (the settings file Flotilla passes with --settings) are real.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Fleet
from interactive_support import (
    configure,
    details,
    hook_records,
    pane,
    sessions,
    toml_string,
    wait_for,
    wait_state,
)

from fakemodels import FakeModelServer, FinalText, Script, WriteFile, fake_server
from fakemodels.clienv import MODELS, cli_env, launcher, missing_reason

pytestmark = [pytest.mark.tmux, pytest.mark.real_cli, pytest.mark.slow]


def require_claude() -> Path:
    reason = missing_reason("claude")
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and the real claude CLI is unavailable: {reason}")
        pytest.skip(reason)
    path = launcher("claude")
    assert path is not None
    return path


def skip_first_run_screens(claude_home: Path, trusted: Path, api_key: str) -> None:
    """What a person clicks through once: onboarding, the API key, trusting the folder.

    Trust given to a folder covers the worktrees below it.
    """
    state = {
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "customApiKeyResponses": {"approved": [api_key[-20:]], "rejected": []},
        "projects": {
            str(trusted): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}
        },
    }
    (claude_home / ".claude.json").write_text(json.dumps(state))


@pytest.fixture
def claude_fake() -> Iterator[FakeModelServer]:
    script = Script(steps=(WriteFile("hello.txt", "hi from claude\n"), FinalText("All done.")))
    with fake_server("claude", script) as fake:
        yield fake


def test_claude_tui_asks_permission_then_hooks_drive_the_state(
    fleet: Fleet, claude_fake: FakeModelServer, tmp_path: Path
) -> None:
    binary = require_claude()
    cli = cli_env("claude", tmp_path / "claude-home", claude_fake.base_url)
    skip_first_run_screens(cli.home, tmp_path, cli.env["ANTHROPIC_API_KEY"])
    for key in [k for k in fleet.env if k.startswith(("ANTHROPIC_", "CLAUDE_"))]:
        del fleet.env[key]  # a developer's real credentials never reach the CLI
    env = ", ".join(f"{key} = {toml_string(value)}" for key, value in cli.env.items())
    configure(
        fleet,
        '[project]\ndefault_agent = "claude"\n'
        f"[agents.claude]\nbinary = {toml_string(str(binary))}\n"
        f'model = "{MODELS["claude"]}"\npermission_mode = "default"\nenv = {{ {env} }}\n',
    )
    fleet.run("create", "cl", "-p", "write hello.txt please", "--interactive")
    session = details(fleet, "cl")["tmux_session"]

    # The Write tool needs permission: Claude's Notification hook says so.
    worker = wait_state(fleet, "cl", "waiting", timeout=60)
    hooks = [json.loads(line) for line in hook_records(worker["run_dir"])]
    assert hooks and hooks[-1]["event"] == "waiting" and hooks[-1]["source"] == "claude", hooks
    assert hooks[-1].get("notification_type") == "permission_prompt", hooks
    screen = pane(fleet, session)
    assert "Do you want to create hello.txt?" in screen, screen
    worktree = Path(worker["worktree"])
    assert not (worktree / "hello.txt").exists()

    assert fleet.json("prompt", "cl", "1")["status"] == "delivered"  # "1. Yes"
    wait_for(lambda: (worktree / "hello.txt").exists(), "claude to write the file", timeout=30)
    assert (worktree / "hello.txt").read_text() == "hi from claude\n"
    wait_for(
        lambda: any(json.loads(h)["event"] == "stopped" for h in hook_records(worker["run_dir"])),
        "claude's Stop hook",
        timeout=30,
    )
    stopped = [json.loads(h) for h in hook_records(worker["run_dir"])][-1]
    assert stopped["event"] == "stopped" and stopped.get("last_message") == "All done.", stopped
    assert "All done." in pane(fleet, session)
    # The TUI also asks the model for a session title (a call without tools).
    turns = [c for c in claude_fake.model_calls() if c.body.get("tools")]
    assert len(turns) == 2

    fleet.run("kill", "cl")
    assert session not in sessions(fleet)
    assert not worktree.exists()
