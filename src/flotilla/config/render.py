"""`fleet config` output: the effective configuration as TOML, optionally with origins.

The text (comments aside) is valid TOML that parses back to `LoadedConfig.to_dict()`
minus unset optional values, which TOML cannot spell.
"""

from __future__ import annotations

import math
from typing import Any

from flotilla.config.keys import KeyPath, format_key, toml_string
from flotilla.config.loader import LoadedConfig

_TABLE_DEPTH = {"agents": 2, "prices": 2}  # [agents.<kind>] and [prices."<model>"] are tables
_MAX_PAD = 48


def render_config(loaded: LoadedConfig, show_origin: bool = False) -> str:
    lines: list[str] = []
    if show_origin:
        files = ", ".join(str(path) for path in loaded.files) or "none"
        lines.append(f"# files read (lowest precedence first): {files}")
    _render_table(loaded, (), loaded.config.model_dump(mode="python"), lines, show_origin)
    return "\n".join(lines).strip("\n") + "\n"


def _is_table(path: KeyPath) -> bool:
    return len(path) == 1 or (len(path) <= _TABLE_DEPTH.get(path[0], 1))


def _render_table(
    loaded: LoadedConfig, path: KeyPath, data: dict[str, Any], lines: list[str], show: bool
) -> None:
    leaves: list[tuple[KeyPath, Any]] = []
    tables: list[tuple[KeyPath, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict) and _is_table((*path, key)):
            tables.append(((*path, key), value))
        elif isinstance(value, dict) and value:
            leaves.extend(((key, *sub), v) for sub, v in _dotted(value))
        elif value is not None:
            leaves.append(((key,), value))
    if path and (leaves or not tables):
        lines.extend(["", f"[{format_key(path)}]"])
    assignments = [f"{format_key(rel)} = {toml_value(value)}" for rel, value in leaves]
    pad = min(max((len(a) for a in assignments), default=0), _MAX_PAD)
    for (rel, _), text in zip(leaves, assignments, strict=True):
        if show:
            text = f"{text.ljust(pad)}  # {loaded.merged.origin_of((*path, *rel))}"
        lines.append(text)
    for sub_path, sub_data in tables:
        _render_table(loaded, sub_path, sub_data, lines, show)


def _dotted(data: dict[str, Any]) -> list[tuple[KeyPath, Any]]:
    out: list[tuple[KeyPath, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.extend(((key, *sub), v) for sub, v in _dotted(value))
        else:
            out.append(((key,), value))
    return out


def toml_value(value: Any) -> str:
    """A TOML literal for a config value (str, bool, int, float, list, dict)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = ", ".join(f"{format_key((k,))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")
