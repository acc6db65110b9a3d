"""Hook relay: the commands Claude and Codex would run, run for real, read back as events."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

from flotilla.domain.events import EventKind
from flotilla.executors.hooks import (
    codex_notify_override,
    hooks_path,
    parse_hook_line,
    write_claude_settings,
)


def _claude_hook(run_dir: Path, event: str) -> str:
    settings = json.loads(write_claude_settings(run_dir).read_text())
    return str(settings["hooks"][event][0]["hooks"][0]["command"])


def _lines(run_dir: Path) -> list[str]:
    return hooks_path(run_dir).read_text().splitlines()


def test_claude_notification_hook_appends_a_waiting_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run dir with 'quotes'"  # the command string must quote its paths
    payload = {
        "session_id": "s-1",
        "hook_event_name": "Notification",
        "message": "Claude needs your permission to use Bash",
        "notification_type": "permission_prompt",
    }
    # Claude runs the command through a shell, payload on stdin.
    command = _claude_hook(run_dir, "Notification")
    subprocess.run(["sh", "-c", command], input=json.dumps(payload), text=True, check=True)

    [line] = _lines(run_dir)
    event = parse_hook_line(line)
    assert event is not None
    assert event.kind is EventKind.WAITING
    assert event.text == "Claude needs your permission to use Bash"
    assert event.session_id == "s-1"
    assert event.data["notification_type"] == "permission_prompt"


def test_claude_stop_hook_reads_last_message_from_transcript(tmp_path: Path) -> None:
    transcript = tmp_path / "t.jsonl"
    entries = [
        {"type": "user", "message": {"content": "hi"}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "All done."}]}},
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash"}]}},
    ]
    transcript.write_text("\n".join(json.dumps(e) for e in entries) + "\nnot json\n")
    payload = {"session_id": "s-2", "hook_event_name": "Stop", "transcript_path": str(transcript)}
    command = _claude_hook(tmp_path / "run", "Stop")
    subprocess.run(["sh", "-c", command], input=json.dumps(payload), text=True, check=True)
    subprocess.run(["sh", "-c", command], input="", text=True, check=True)  # no payload at all

    first, second = (parse_hook_line(line) for line in _lines(tmp_path / "run"))
    assert first is not None and first.kind is EventKind.RESULT
    assert first.text == "All done."
    assert first.session_id == "s-2"
    assert second is not None and second.kind is EventKind.RESULT and second.text == ""


def test_codex_notify_gets_payload_as_last_argument(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = tomllib.loads(codex_notify_override(run_dir))["notify"]
    payload = {
        "type": "agent-turn-complete",
        "thread-id": "th-1",
        "turn-id": "1",
        "cwd": str(tmp_path),
        "input-messages": ["add hello"],
        "last-assistant-message": "Added hello.py",
    }
    subprocess.run([*argv, json.dumps(payload)], check=True)
    subprocess.run([*argv, json.dumps({"type": "approval-requested"})], check=True)

    done, asking = (parse_hook_line(line) for line in _lines(run_dir))
    assert done is not None and done.kind is EventKind.RESULT
    assert (done.text, done.session_id) == ("Added hello.py", "th-1")
    assert asking is not None and asking.kind is EventKind.WAITING


def test_lines_that_mean_nothing_are_ignored() -> None:
    assert parse_hook_line("not json") is None
    assert parse_hook_line("[1, 2]") is None
    assert parse_hook_line('{"event": "started"}') is None
    auth = '{"event": "waiting", "notification_type": "auth_success", "message": "ok"}'
    assert parse_hook_line(auth) is None
