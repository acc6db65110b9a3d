"""Gemini CLI adapter: parser on recorded stream-json transcripts, exit codes, argv."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_support import drive, kinds, only, transcript

from flotilla.domain.events import EventKind
from flotilla.executors.base import AgentSettings, LaunchSpec
from flotilla.executors.gemini import GeminiExecutor, GeminiParser

SESSION = "c3f1e2d4-5a6b-4c7d-8e9f-0a1b2c3d4e5f"


def test_success_run_joins_delta_chunks_into_one_text_per_message() -> None:
    events = drive(GeminiParser(), transcript("gemini_success.jsonl"))

    assert kinds(events) == [
        EventKind.SESSION_STARTED,
        EventKind.TEXT,
        EventKind.TOOL_CALL,
        EventKind.TOOL_RESULT,
        EventKind.TOOL_CALL,
        EventKind.TOOL_RESULT,
        EventKind.TEXT,
        EventKind.USAGE,
        EventKind.RESULT,
    ]
    assert events[0].session_id == SESSION
    assert events[0].data["model"] == "gemini-2.5-pro"
    assert events[1].text == "I will create hello.py now."
    assert events[2].tool == "write_file"
    assert events[2].data["file_path"] == "/tmp/wt/add-hello/hello.py"
    assert (events[3].tool, events[3].is_error) == ("write_file", False)
    assert (events[5].tool, events[5].is_error) == ("run_shell_command", True)
    assert events[5].text == "Command exited with code: 5"
    usage = events[7].usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (4980, 250, 3100)
    assert usage.model == "gemini-2.5-pro" and usage.cost_usd is None
    result = events[-1]
    assert not result.is_error
    assert result.text == "Done: hello.py prints hello."
    assert result.session_id == SESSION


def test_text_not_lost_when_stream_ends_without_result() -> None:
    lines = transcript("gemini_success.jsonl")[:4]  # init, user, two assistant chunks
    events = drive(GeminiParser(), lines, 1, "boom")
    assert kinds(events) == [
        EventKind.SESSION_STARTED,
        EventKind.TEXT,
        EventKind.ERROR,
        EventKind.RESULT,
    ]
    assert events[1].text == "I will create hello.py now."


def test_rate_limit_from_exit_code_173() -> None:
    stderr = "[API Error: You have exhausted your capacity on this model.]"
    events = drive(GeminiParser(), transcript("gemini_rate_limit.jsonl"), 173, stderr)
    assert kinds(events) == [EventKind.SESSION_STARTED, EventKind.RATE_LIMITED, EventKind.RESULT]
    assert events[-1].is_error
    assert "exhausted" in events[-1].text


@pytest.mark.parametrize("code", [41, 52])
def test_auth_and_config_exit_codes(code: int) -> None:
    events = drive(GeminiParser(), [], code, "Invalid auth method selected.")
    assert kinds(events) == [EventKind.AUTH_FAILED, EventKind.RESULT]
    assert events[-1].data["exit_code"] == code


def test_other_exit_without_result_is_error_with_stderr_tail() -> None:
    stderr = "\n".join(f"line {i}" for i in range(40))
    events = drive(GeminiParser(), [], 144, stderr)
    assert kinds(events) == [EventKind.ERROR, EventKind.RESULT]
    assert events[0].text.splitlines() == [f"line {i}" for i in range(20, 40)]


def test_error_result_and_warning() -> None:
    events = drive(GeminiParser(), transcript("gemini_error_result.jsonl"), exit_code=53)
    assert kinds(events) == [
        EventKind.SESSION_STARTED,
        EventKind.TEXT,  # "Let me look." flushed by the warning
        EventKind.TEXT,  # the warning itself
        EventKind.USAGE,
        EventKind.ERROR,
        EventKind.RESULT,
    ]
    assert events[2].text.startswith("warning: Loop detected")
    result = events[-1]
    assert result.is_error
    assert result.text == "Reached max session turns for this session."
    assert result.data["error"]["type"] == "FatalTurnLimitedError"


def test_exit_173_after_an_error_result_still_reports_rate_limit() -> None:
    events = drive(GeminiParser(), transcript("gemini_error_result.jsonl"), exit_code=173)
    assert kinds(events)[-1] is EventKind.RATE_LIMITED
    assert kinds(events).count(EventKind.RESULT) == 1


def _spec(tmp_path: Path, **kw: object) -> LaunchSpec:
    return LaunchSpec(prompt="add hello", worktree=tmp_path, run_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_headless_argv(tmp_path: Path) -> None:
    command = GeminiExecutor().headless(_spec(tmp_path, session_id=SESSION, model="gemini-2.5-pro"))
    assert command.argv == [
        "gemini", "-p", "add hello", "--output-format", "stream-json", "--approval-mode", "yolo",
        "--skip-trust", "-m", "gemini-2.5-pro", "--session-id", SESSION,
    ]  # fmt: skip


def test_resume_and_interactive_argv(tmp_path: Path) -> None:
    settings = AgentSettings(extra_flags=("--debug",))
    resumed = GeminiExecutor().headless(
        _spec(tmp_path, settings=settings, session_id=SESSION, resume=True)
    )
    assert resumed.argv[-3:] == ["--resume", SESSION, "--debug"]
    assert "--session-id" not in resumed.argv
    interactive = GeminiExecutor().interactive(_spec(tmp_path, session_id=SESSION))
    assert interactive.argv[:3] == ["gemini", "-i", "add hello"]
    assert "--output-format" not in interactive.argv


def test_parser_from_executor_knows_the_model_before_init(tmp_path: Path) -> None:
    parser = GeminiExecutor().parser(_spec(tmp_path, model="gemini-2.5-flash"))
    events = drive(parser, ['{"type":"result","status":"success","stats":{"input_tokens":10}}'])
    assert only(events, EventKind.USAGE).usage.model == "gemini-2.5-flash"  # type: ignore[union-attr]
