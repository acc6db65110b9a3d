"""Codex adapter: parser on recorded `codex exec --json` transcripts, and its argv."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from executor_support import drive, kinds, only, transcript

from flotilla.domain.errors import UsageError
from flotilla.domain.events import EventKind
from flotilla.executors.base import AgentSettings, LaunchSpec
from flotilla.executors.codex import CodexExecutor, CodexParser

THREAD = "0199a213-81c0-7800-8aa1-bbab2a035a53"


def test_success_run() -> None:
    events = drive(CodexParser(model="gpt-5-codex"), transcript("codex_success.jsonl"))

    assert events[0].kind is EventKind.SESSION_STARTED
    assert events[0].session_id == THREAD
    calls = [e for e in events if e.kind is EventKind.TOOL_CALL]
    assert [c.data["command"] for c in calls] == [
        "/bin/bash -lc ls",
        "/bin/bash -lc 'python3 -m pytest -q'",
    ]
    results = [e for e in events if e.kind is EventKind.TOOL_RESULT]
    assert [(r.tool, r.is_error) for r in results] == [
        ("command_execution", False),
        ("file_change", False),
        ("command_execution", True),  # exit code 5
    ]
    assert results[0].text == "README.md\n"
    assert results[1].data["changes"] == [{"path": "/tmp/wt/add-hello/hello.py", "kind": "add"}]
    assert results[2].data["exit_code"] == 5

    usage = only(events, EventKind.USAGE).usage
    assert usage is not None
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (
        24763,
        24448,
        122,
    )
    assert usage.cost_usd is None  # codex gives no figure: priced later
    assert usage.model == "gpt-5-codex"  # from the launch spec

    result = events[-1]
    assert result.kind is EventKind.RESULT
    assert not result.is_error
    assert result.text == "Added hello.py, which prints hello. There are no tests yet."
    assert result.session_id == THREAD
    assert [e.text for e in events if e.kind is EventKind.TEXT] == [
        "Checking the layout first.",
        "Added hello.py, which prints hello. There are no tests yet.",
    ]


def test_rate_limit_turn_failed() -> None:
    events = drive(CodexParser(), transcript("codex_rate_limit.jsonl"), exit_code=1)
    assert kinds(events) == [
        EventKind.SESSION_STARTED,
        EventKind.RATE_LIMITED,  # the top-level error event
        EventKind.RATE_LIMITED,  # turn.failed
        EventKind.RESULT,
    ]
    assert events[-1].is_error
    assert "429 Too Many Requests" in events[-1].text


@pytest.mark.parametrize("name", ["codex_auth_failed.jsonl", "codex_missing_key.jsonl"])
def test_auth_failures(name: str) -> None:
    events = drive(CodexParser(), transcript(name), exit_code=1)
    assert kinds(events) == [EventKind.SESSION_STARTED, EventKind.AUTH_FAILED, EventKind.RESULT]
    assert events[-1].is_error
    assert events[-1].session_id == THREAD


def test_missing_key_reported_only_on_stderr() -> None:
    stderr = "Error: Missing environment variable: `OPENAI_API_KEY`."
    events = drive(CodexParser(), ["Reading prompt from stdin..."], 1, stderr)
    assert kinds(events) == [EventKind.TEXT, EventKind.AUTH_FAILED, EventKind.RESULT]
    assert events[-1].is_error


def test_parser_takes_model_from_spec(tmp_path: Path) -> None:
    spec = LaunchSpec("p", tmp_path, tmp_path, AgentSettings(model="gpt-5"))
    events = drive(CodexExecutor().parser(spec), transcript("codex_success.jsonl"))
    assert only(events, EventKind.USAGE).usage.model == "gpt-5"  # type: ignore[union-attr]


def _spec(tmp_path: Path, **kw: object) -> LaunchSpec:
    return LaunchSpec(prompt="add hello", worktree=tmp_path / "wt", run_dir=tmp_path / "run", **kw)  # type: ignore[arg-type]


def test_headless_argv(tmp_path: Path) -> None:
    command = CodexExecutor().headless(_spec(tmp_path, model="gpt-5.5"))
    assert command.argv == [
        "codex", "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check",
        "-C", str(tmp_path / "wt"), "-o", str(tmp_path / "run" / "last-message.txt"),
        "-m", "gpt-5.5", "add hello",
    ]  # fmt: skip
    assert command.stdin is None  # else codex appends stdin to the prompt


def test_resume_argv_puts_flags_before_resume_and_prompt_last(tmp_path: Path) -> None:
    settings = AgentSettings(
        extra_flags=("-c", "model_provider=local"), permission_mode="danger-full-access"
    )
    command = CodexExecutor().headless(
        _spec(tmp_path, settings=settings, session_id=THREAD, resume=True)
    )
    argv = command.argv
    assert argv[argv.index("--sandbox") + 1] == "danger-full-access"
    assert argv[-5:] == ["-c", "model_provider=local", "resume", THREAD, "add hello"]
    assert argv.index("-C") < argv.index("resume")


def test_bypass_mode_and_bad_mode(tmp_path: Path) -> None:
    command = CodexExecutor().headless(
        _spec(tmp_path, settings=AgentSettings(permission_mode="bypass"))
    )
    assert "--dangerously-bypass-approvals-and-sandbox" in command.argv
    assert "--sandbox" not in command.argv
    with pytest.raises(UsageError, match="workspace-write"):
        CodexExecutor().headless(_spec(tmp_path, settings=AgentSettings(permission_mode="yolo")))


def test_interactive_uses_tui_with_notify_hook(tmp_path: Path) -> None:
    command = CodexExecutor().interactive(_spec(tmp_path, session_id=THREAD, resume=True))
    argv = command.argv
    assert "exec" not in argv and "--json" not in argv
    assert argv[-3:] == ["resume", THREAD, "add hello"]
    override = argv[argv.index("-c") + 1]
    notify = tomllib.loads(override)["notify"]  # must be valid TOML for codex's -c
    assert notify[-4:] == [
        "flotilla.executors.hooks",
        "auto",
        "codex",
        str(tmp_path / "run" / "hooks.jsonl"),
    ]
