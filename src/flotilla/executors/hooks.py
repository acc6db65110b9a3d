"""Hook relay: how an interactive agent tells Flotilla it waits or stopped, without screen scraping.

The agents' own hook mechanisms (Claude Code `Notification`/`Stop` hooks, Codex
`notify`) run `python -m flotilla.executors.hooks EVENT SOURCE FILE [PAYLOAD]`,
which appends one JSON line to FILE (the worker's `hooks.jsonl`):

    {"event": "waiting"|"stopped", "source": "claude", "ts": 1700000000.0,
     "session_id": "...", "message": "...", "notification_type": "...",
     "last_message": "..."}

Claude passes its payload on stdin, Codex as the last argument. EVENT "auto"
derives the event from the payload's `type` (Codex: agent-turn-complete means
stopped, anything else waiting). `parse_hook_line` turns those lines into
WAITING and RESULT events.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from flotilla import counters
from flotilla.domain.events import AgentEvent, EventKind

HOOKS_FILE = "hooks.jsonl"
_NOT_WAITING = {"auth_success"}  # Claude notifications that need nobody


def hooks_path(run_dir: Path) -> Path:
    return run_dir / HOOKS_FILE


def relay_argv(event: str, source: str, hooks_file: Path) -> list[str]:
    """argv of the relay, with this interpreter so it runs whatever PATH the agent has."""
    return [sys.executable, "-m", "flotilla.executors.hooks", event, source, str(hooks_file)]


def write_claude_settings(run_dir: Path) -> Path:
    """Write a Claude Code settings file with Notification and Stop hooks; return its path."""
    hooks_file = hooks_path(run_dir)

    def hook(event: str) -> list[dict[str, Any]]:
        command = shlex.join(relay_argv(event, "claude", hooks_file))
        return [{"hooks": [{"type": "command", "command": command}]}]

    settings = {"hooks": {"Notification": hook("waiting"), "Stop": hook("stopped")}}
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "claude-settings.json"
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return path


def codex_notify_override(run_dir: Path) -> str:
    """The `-c notify=[...]` value (a TOML array) for Codex."""
    argv = relay_argv("auto", "codex", hooks_path(run_dir))
    return "notify=[" + ",".join(_toml_string(arg) for arg in argv) + "]"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(ch if ch >= " " and ch != "\x7f" else f"\\u{ord(ch):04x}" for ch in escaped)
    return f'"{escaped}"'


def hook_record(event: str, source: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON line for one hook call, from the agent's payload."""
    if event == "auto":
        event = (
            "stopped"
            if payload.get("type", "agent-turn-complete") == "agent-turn-complete"
            else "waiting"
        )
    record: dict[str, Any] = {"event": event, "source": source, "ts": time.time()}
    session = payload.get("session_id") or payload.get("thread-id")
    if isinstance(session, str):
        record["session_id"] = session
    for key, field in (
        ("message", "message"),
        ("notification_type", "notification_type"),
        ("last_assistant_message", "last_message"),
        ("last-assistant-message", "last_message"),
        ("type", "type"),
    ):
        if isinstance(payload.get(key), str):
            record[field] = payload[key]
    if event == "stopped" and "last_message" not in record:
        transcript = payload.get("transcript_path")
        if isinstance(transcript, str):
            last = last_assistant_text(Path(transcript))
            if last:
                record["last_message"] = last
    return record


def last_assistant_text(transcript: Path) -> str:
    """The last assistant text in a Claude transcript (JSONL), or ''."""
    try:
        lines = transcript.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        counters.count("executors.hook_transcript_unreadable")
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            counters.count("executors.hook_transcript_bad_line")
            continue
        if not isinstance(entry, dict) or entry.get("type") != "assistant":
            continue
        content = (entry.get("message") or {}).get("content")
        if isinstance(content, list):
            texts = [
                b.get("text", "")
                for b in content
                if isinstance(b, dict) and b.get("type") == "text"
            ]
            if any(texts):
                return "\n".join(t for t in texts if t)
    return ""


def append_line(hooks_file: Path, record: dict[str, Any]) -> None:
    """Append one line with a single O_APPEND write, so concurrent hooks never interleave."""
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    hooks_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(hooks_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def parse_hook_line(line: str) -> AgentEvent | None:
    """WAITING or RESULT for one line of hooks.jsonl; None for anything else."""
    try:
        record = json.loads(line)
    except ValueError:
        counters.count("executors.hook_line_invalid")
        return None
    if not isinstance(record, dict):
        return None
    session = record.get("session_id") if isinstance(record.get("session_id"), str) else None
    data = {"source": record.get("source"), "hook": True}
    if record.get("event") == "waiting":
        notification = record.get("notification_type")
        if notification in _NOT_WAITING:
            return None
        if notification:
            data["notification_type"] = notification
        text = str(record.get("message") or "the agent is waiting for input")
        return AgentEvent(EventKind.WAITING, text=text, session_id=session, data=data)
    if record.get("event") == "stopped":
        text = str(record.get("last_message") or "")
        return AgentEvent(EventKind.RESULT, text=text, session_id=session, data=data)
    return None


def _read_payload(args: list[str]) -> dict[str, Any]:
    raw = args[0] if args else ("" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read())
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except ValueError:
        counters.count("executors.hook_payload_invalid")
        return {"message": raw.strip()}
    return payload if isinstance(payload, dict) else {}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print(
            "usage: python -m flotilla.executors.hooks EVENT SOURCE FILE [PAYLOAD]", file=sys.stderr
        )
        return 2
    event, source, hooks_file = args[0], args[1], Path(args[2])
    append_line(hooks_file, hook_record(event, source, _read_payload(args[3:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
