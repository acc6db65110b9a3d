"""Claude Code adapter: parser on recorded stream-json transcripts, and its argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from executor_support import NASTY_PROMPTS, drive, kinds, only, transcript

from flotilla import counters
from flotilla.domain.errors import UsageError
from flotilla.domain.events import EventKind
from flotilla.executors.base import AgentSettings, LaunchSpec
from flotilla.executors.claude import ClaudeExecutor, ClaudeParser

SESSION = "5d3a7c1e-2f4b-4e8a-9c61-0b7d2e9f4a10"


def test_success_run_gives_session_tools_text_usage_and_result() -> None:
    events = drive(ClaudeParser(), transcript("claude_success.jsonl"))

    started = events[0]
    assert started.kind is EventKind.SESSION_STARTED
    assert started.session_id == SESSION
    assert started.data["model"] == "claude-sonnet-4-5-20250929"

    calls = [e for e in events if e.kind is EventKind.TOOL_CALL]
    assert [c.tool for c in calls] == ["Write", "Bash"]
    assert calls[0].data == {
        "file_path": "/tmp/wt/add-hello/hello.py",
        "content": "print('hello')\n",
    }
    results = [e for e in events if e.kind is EventKind.TOOL_RESULT]
    assert [(r.tool, r.is_error) for r in results] == [("Write", False), ("Bash", True)]
    assert "no tests ran" in results[1].text

    texts = [e.text for e in events if e.kind is EventKind.TEXT]
    assert texts == [
        "I'll create hello.py and run it.",
        "Created hello.py; it prints hello. The project has no tests yet.",
    ]  # thinking blocks are not prose

    usage = only(events, EventKind.USAGE)
    assert usage.data == {"final": True}
    assert usage.usage is not None
    assert usage.usage.input_tokens == 16 + 2192 + 28792
    assert usage.usage.cached_input_tokens == 28792
    assert usage.usage.output_tokens == 101
    assert usage.usage.cost_usd == pytest.approx(0.031245)
    assert usage.usage.model == "claude-sonnet-4-5-20250929"  # the costlier of the two models

    result = events[-1]
    assert result.kind is EventKind.RESULT
    assert not result.is_error
    assert result.text == "Created hello.py; it prints hello. The project has no tests yet."
    assert result.session_id == SESSION
    assert result.data["subtype"] == "success"
    assert result.data["num_turns"] == 5
    assert result.data["permission_denials"] == []
    assert EventKind.ERROR not in kinds(events)


def test_rate_limited_run_reports_rate_limit_with_retry_delay() -> None:
    events = drive(ClaudeParser(), transcript("claude_rate_limit.jsonl"), exit_code=1)

    limited = [e for e in events if e.kind is EventKind.RATE_LIMITED]
    assert len(limited) == 3  # api_retry, the synthetic assistant message, the result's 429
    assert limited[0].retry_after == pytest.approx(1.5)
    assert "429" in limited[1].text
    assert EventKind.TEXT not in kinds(events)  # the synthetic error message is not prose
    result = events[-1]
    assert result.kind is EventKind.RESULT
    assert result.is_error
    assert result.data["api_error_status"] == 429
    assert kinds(events).count(EventKind.RESULT) == 1  # finish adds nothing after a result


def test_auth_failure_is_auth_failed_not_rate_limited() -> None:
    events = drive(ClaudeParser(), transcript("claude_auth_failed.jsonl"), exit_code=1)

    assert EventKind.RATE_LIMITED not in kinds(events)
    auth = [e for e in events if e.kind is EventKind.AUTH_FAILED]
    assert len(auth) == 3
    assert auth[1].text == "Invalid API key · Fix external API key"
    assert events[-1].is_error
    assert events[-1].data["api_error_status"] == 401


def test_max_turns_is_an_error_result_even_when_is_error_is_false() -> None:
    events = drive(ClaudeParser(), transcript("claude_max_turns.jsonl"), exit_code=1)

    tool_result = only(events, EventKind.TOOL_RESULT)
    assert tool_result.tool == "Read"
    assert tool_result.text == "     1\t# Demo\n"  # list-of-blocks content
    result = events[-1]
    assert result.kind is EventKind.RESULT
    assert result.is_error
    assert result.data["subtype"] == "error_max_turns"
    assert result.text == ""
    assert result.usage is not None and result.usage.cost_usd == pytest.approx(0.00812)


def test_permission_denied_run_exits_zero_but_lists_the_denials() -> None:
    events = drive(ClaudeParser(), transcript("claude_permission_denied.jsonl"), exit_code=0)

    assert only(events, EventKind.SESSION_STARTED).data["permissionMode"] == "default"
    denied = only(events, EventKind.TOOL_RESULT)
    assert denied.is_error and "haven't granted" in denied.text
    result = events[-1]
    assert not result.is_error  # the CLI calls it a success ...
    assert [d["tool_name"] for d in result.data["permission_denials"]] == ["Write"]  # ... it wasn't


def test_run_that_dies_without_result_gets_error_and_a_stand_in_result() -> None:
    lines = transcript("claude_success.jsonl")[:1]
    events = drive(
        ClaudeParser(), lines, 1, "Error: Unable to connect to API (ConnectionRefused)\n"
    )

    assert kinds(events) == [EventKind.SESSION_STARTED, EventKind.ERROR, EventKind.RESULT]
    assert "Unable to connect to API" in events[1].text
    assert events[2].is_error and events[2].data["exit_code"] == 1


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("Invalid API key · Please run /login", EventKind.AUTH_FAILED),
        ("API Error: 429 rate_limit_error", EventKind.RATE_LIMITED),
        ("Error: --dangerously-skip-permissions cannot be used with root/sudo", EventKind.ERROR),
    ],
)
def test_stderr_only_failures_are_classified(stderr: str, kind: EventKind) -> None:
    events = drive(ClaudeParser(), [], 1, stderr)
    assert kinds(events) == [kind, EventKind.RESULT]


def test_unparseable_lines_are_text_and_broken_json_is_counted() -> None:
    parser = ClaudeParser()
    assert kinds(parser.feed("plain words")) == [EventKind.TEXT]
    assert parser.feed("") == []
    assert parser.feed('{"type":"stream_event","event":{}}') == []
    before = counters.snapshot().get("executors.claude_bad_json", 0)
    assert [e.text for e in parser.feed("{not json")] == ["{not json"]
    assert counters.snapshot()["executors.claude_bad_json"] == before + 1


def _spec(tmp_path: Path, prompt: str = "add hello", **kw: object) -> LaunchSpec:
    return LaunchSpec(prompt=prompt, worktree=tmp_path / "wt", run_dir=tmp_path / "run", **kw)  # type: ignore[arg-type]


def test_headless_argv_new_session(tmp_path: Path) -> None:
    spec = _spec(tmp_path, session_id=SESSION, model="claude-sonnet-4-5")
    command = ClaudeExecutor().headless(spec)
    assert command.argv == [
        "claude", "-p", "add hello", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "acceptEdits", "--session-id", SESSION, "--model", "claude-sonnet-4-5",
    ]  # fmt: skip
    assert command.cwd == tmp_path / "wt"
    assert command.stdin is None  # stdin closed
    assert "IS_SANDBOX" not in command.env


def test_headless_argv_resume_and_settings(tmp_path: Path) -> None:
    settings = AgentSettings(
        binary="/opt/claude",
        model="opus",
        extra_flags=("--max-turns", "3"),
        env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
        permission_mode="bypassPermissions",
    )
    command = ClaudeExecutor().headless(
        _spec(tmp_path, settings=settings, session_id="s1", resume=True)
    )
    assert command.argv[:3] == ["/opt/claude", "-p", "add hello"]
    assert command.argv[3:] == [
        "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions",
        "--resume", "s1", "--model", "opus", "--max-turns", "3",
    ]  # fmt: skip
    assert command.env == {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "IS_SANDBOX": "1"}


def test_resume_without_session_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="session id"):
        ClaudeExecutor().headless(_spec(tmp_path, resume=True))


def test_empty_prompt_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="prompt is empty"):
        ClaudeExecutor().headless(_spec(tmp_path, prompt="  \n"))


def test_interactive_writes_hook_settings_and_passes_prompt_last(tmp_path: Path) -> None:
    command = ClaudeExecutor().interactive(
        _spec(tmp_path, prompt=NASTY_PROMPTS[1], session_id="s2")
    )
    assert command.argv[0] == "claude"
    assert "-p" not in command.argv
    assert command.argv[-1] == NASTY_PROMPTS[1]
    settings_file = Path(command.argv[command.argv.index("--settings") + 1])
    assert settings_file.parent == tmp_path / "run"
    hooks = json.loads(settings_file.read_text())["hooks"]
    assert set(hooks) == {"Notification", "Stop"}
    assert "hooks.jsonl" in hooks["Stop"][0]["hooks"][0]["command"]
    assert command.argv[command.argv.index("--session-id") + 1] == "s2"
