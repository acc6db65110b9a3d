"""The sources of settings, each read into a `Layer` of (key, value, origin) triples.

Reading never raises for bad content: unreadable files and TOML syntax errors
become problems on the layer, so `validate_config` can report all of them at once.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from flotilla.config.keys import KeyPath
from flotilla.config.schema import expects_string
from flotilla.counters import count

ENV_PREFIX = "FLOTILLA_"
ENV_SEPARATOR = "__"
DATABASE_URL_ENV = "FLOTILLA_DATABASE_URL"
DEFAULT_ORIGIN = "default"


class LayerKind(Enum):
    USER = "user"
    PROJECT = "project"
    ENV = "env"


@dataclass(frozen=True)
class Setting:
    path: KeyPath
    value: Any
    origin: str  # a file path, or "env NAME"


@dataclass(frozen=True)
class Layer:
    kind: LayerKind
    settings: tuple[Setting, ...] = ()
    problems: tuple[str, ...] = ()
    file: Path | None = None  # the file read, when there was one


def flatten(data: Mapping[str, Any], prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Leaves of nested tables; an empty table is a leaf so that `[agents.x]` alone still counts."""
    for key, value in data.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            yield from flatten(value, path)
        else:
            yield path, value


def read_file(path: Path, kind: LayerKind) -> Layer | None:
    """The layer of one TOML file, or None when there is no such file."""
    if not path.exists():
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        count("config.unreadable_file")
        return Layer(kind, problems=(f"cannot read {path}: {exc.strerror or exc}",), file=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        count("config.not_utf8")
        line = raw[: exc.start].count(b"\n") + 1
        return Layer(kind, problems=(f"{path} is not UTF-8 text (line {line})",), file=path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        count("config.toml_syntax")
        return Layer(kind, problems=(_syntax_problem(path, text, exc),), file=path)
    origin = str(path)
    settings = tuple(Setting(key, value, origin) for key, value in flatten(data))
    return Layer(kind, settings, file=path)


def _syntax_problem(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> str:
    # Python 3.11's TOMLDecodeError has no lineno attribute: the position is in the message.
    message = str(exc)
    reason, _, where = message.rpartition(" (at ")
    if not reason:
        return f"invalid TOML in {path}: {message}"
    where = where.rstrip(")")
    if where == "end of document":
        lines = text.split("\n")
        where = f"line {len(lines)}, column {len(lines[-1]) + 1} (end of file)"
    return f"invalid TOML in {path} at {where}: {reason}"


def env_layer(env: Mapping[str, str]) -> Layer:
    """`FLOTILLA_<SECTION>__<KEY>` variables, then FLOTILLA_DATABASE_URL for store.url."""
    settings: list[Setting] = []
    problems: list[str] = []
    for name in sorted(env):
        rest = name[len(ENV_PREFIX) :] if name.startswith(ENV_PREFIX) else ""
        if ENV_SEPARATOR not in rest:
            continue
        path = env_key_path(rest)
        if path is None:
            problems.append(
                f"malformed variable name {name}: write FLOTILLA_<SECTION>__<KEY>,"
                " e.g. FLOTILLA_LIMITS__MAX_CONCURRENT"
            )
            continue
        settings.append(Setting(path, parse_env_value(env[name], path), f"env {name}"))
    if env.get(DATABASE_URL_ENV):
        settings.append(Setting(("store", "url"), env[DATABASE_URL_ENV], f"env {DATABASE_URL_ENV}"))
    return Layer(LayerKind.ENV, tuple(settings), tuple(problems))


def env_key_path(rest: str) -> KeyPath | None:
    """`LIMITS__MAX_CONCURRENT` -> ("limits", "max_concurrent").

    Variable names inside an agent's env keep their case (AGENTS__CLAUDE__ENV__MY_VAR).
    """
    parts = rest.split(ENV_SEPARATOR)
    if any(not part for part in parts):
        return None
    lowered = [part.lower() for part in parts]
    if lowered[0] == "agents" and len(parts) >= 4 and lowered[2] == "env":
        return (*lowered[:3], ENV_SEPARATOR.join(parts[3:]))
    return tuple(lowered)


def parse_env_value(raw: str, path: KeyPath) -> Any:
    """A TOML value when `raw` is one (8, true, ["a", "b"]), else the string itself.

    String settings keep the raw text unless it is a quoted TOML string, so that
    `FLOTILLA_PROJECT__BASE_REF=1234` stays the string "1234".
    """
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        count("config.env_value_not_toml")  # expected for plain words: the raw string is used
        return raw
    if set(parsed) != {"v"}:  # e.g. a newline smuggled in a second key
        return raw
    value = parsed["v"]
    if expects_string(path) and not isinstance(value, str):
        return raw
    return value
