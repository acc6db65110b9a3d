"""The scripted agent's script: loading and checking a TOML file of steps.

The format is documented in `flotilla.executors.scripted_agent` and
docs/scripted-agent.md. A script is checked whole before any step runs, so a
typo fails the launch with one clear line instead of half a run.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.domain.errors import UsageError

_NUM = (int, float)
_STR = (str,)
_INT = (int,)
_BOOL = (bool,)
_LIST = (list,)

# action -> (required fields, optional fields), each field -> accepted types
ACTIONS: dict[str, tuple[dict[str, tuple[type, ...]], dict[str, tuple[type, ...]]]] = {
    "write": ({"path": _STR, "content": _STR}, {}),
    "append": ({"path": _STR, "content": _STR}, {}),
    "replace": ({"path": _STR, "old": _STR, "new": _STR}, {}),
    "run": ({"command": _STR}, {"check": _BOOL}),
    "commit": ({"message": _STR}, {}),
    "sleep": ({"seconds": _NUM}, {"heartbeat": _NUM}),
    "say": ({"text": _STR}, {}),
    "summary": ({"text": _STR}, {}),
    "usage": (
        {},
        {
            "input_tokens": _INT,
            "output_tokens": _INT,
            "cached_input_tokens": _INT,
            "cost_usd": _NUM,
            "model": _STR,
        },
    ),
    "fail": ({}, {"message": _STR, "exit_code": _INT}),
    "rate_limit": ({}, {"retry_after": _NUM, "message": _STR}),
    "auth_fail": ({}, {"message": _STR}),
    "silent": ({"seconds": _NUM}, {}),
    "wait_input": ({}, {"text": _STR, "seconds": _NUM}),
    "blocked": ({"text": _STR}, {}),
    "next_steps": ({"items": _LIST}, {}),
    "exit": ({}, {"code": _INT}),
}

_PLACEHOLDER = re.compile(r"\{(prompt|attempt|session_id)\}")


@dataclass(frozen=True)
class Step:
    action: str
    params: dict[str, Any]
    attempts: frozenset[int] | None = None  # None: every attempt

    def applies(self, attempt: int) -> bool:
        return self.attempts is None or attempt in self.attempts

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True)
class Script:
    steps: tuple[Step, ...]
    on_prompt: tuple[Step, ...] = ()
    source: str = "<default>"


NOTES_FILE = "FLOTILLA_NOTES.md"
DEFAULT_SCRIPT = Script(
    steps=(
        Step("write", {"path": NOTES_FILE, "content": "# Notes from Flotilla\n\n{prompt}\n"}),
        Step("say", {"text": f"Dry run: wrote the prompt to {NOTES_FILE}."}),
    ),
)
DEFAULT_ON_PROMPT = (
    Step("append", {"path": NOTES_FILE, "content": "\n## Follow-up\n\n{prompt}\n"}),
    Step("say", {"text": f"Dry run: appended the follow-up to {NOTES_FILE}."}),
)


def substitute(value: Any, values: dict[str, str]) -> Any:
    """Replace {prompt}, {attempt} and {session_id} in strings (also inside lists), once."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    return value


def load_script(path: Path) -> Script:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the agent script {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the agent script {path} is not valid TOML: {exc}") from exc
    return parse_script(raw, str(path))


def parse_script(raw: dict[str, Any], source: str) -> Script:
    unknown = set(raw) - {"steps", "on_prompt"}
    if unknown:
        raise UsageError(
            f"{source}: unknown top-level keys {sorted(unknown)}: use [[steps]] and [[on_prompt]]"
        )
    return Script(
        steps=_steps(raw.get("steps", []), source, "steps"),
        on_prompt=_steps(raw.get("on_prompt", []), source, "on_prompt"),
        source=source,
    )


def _steps(raw: Any, source: str, table: str) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise UsageError(f"{source}: {table} must be an array of tables ([[{table}]])")
    return tuple(_step(item, f"{source}: {table}[{i + 1}]") for i, item in enumerate(raw))


def _step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict) or not isinstance(raw.get("action"), str):
        raise UsageError(f"{where}: each step needs action = one of {', '.join(ACTIONS)}")
    action = raw["action"]
    if action not in ACTIONS:
        raise UsageError(f"{where}: unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    required, optional = ACTIONS[action]
    params = {k: v for k, v in raw.items() if k not in ("action", "attempt")}
    for name in required:
        if name not in params:
            raise UsageError(f"{where}: action {action!r} needs {name!r}")
    for name, value in params.items():
        types = required.get(name) or optional.get(name)
        if types is None:
            allowed = sorted({*required, *optional, "attempt"})
            raise UsageError(f"{where}: {action!r} does not take {name!r} (it takes {allowed})")
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise UsageError(
                f"{where}: {name!r} of {action!r} must be {'/'.join(t.__name__ for t in types)}"
            )
    if action == "next_steps" and not all(isinstance(i, str) for i in params["items"]):
        raise UsageError(f"{where}: next_steps items must be strings")
    for name in ("seconds", "heartbeat"):
        if name in params and params[name] < 0:
            raise UsageError(f"{where}: {name!r} must not be negative")
    return Step(action, params, _attempts(raw.get("attempt"), where))


def _attempts(raw: Any, where: str) -> frozenset[int] | None:
    if raw is None:
        return None
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise UsageError(f"{where}: attempt must be a number >= 1 or a list of them")
    return frozenset(values)
