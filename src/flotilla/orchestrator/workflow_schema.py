"""A workflow definition as plain data (parsed TOML, YAML or JSON) -> WorkflowSpec.

Strict: an unknown key is an error naming it (with a close match when there is
one), and every value is type-checked. Parameters: a `[params]` table declares
names with default values; any string value that is exactly `$NAME` of a
declared parameter is replaced by its value (of any type), so a built-in
template can say `agent = "$agents"` and `count = "$count"`.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Mapping
from typing import Any, cast

from flotilla.domain.errors import UsageError
from flotilla.domain.workflow import WORKTREE_MODES, StageSpec, WorkflowSpec

WORKFLOW_KEYS = (
    "name",
    "description",
    "task_prompt",
    "fail_fast",
    "max_cost_usd",
    "max_tokens",
    "params",
    "stages",
)
STAGE_KEYS = (
    "name",
    "agent",
    "agents",
    "model",
    "flags",
    "extra_flags",
    "prompt",
    "depends_on",
    "worktree",
    "inherit_from",
    "base_ref",
    "count",
    "parts",
    "timeout_s",
    "retries",
    "when",
    "gate",
    "rank",
    "judge",
    "picks",
    "interactive",
)
_PARAM_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _unknown_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(allowed)}"
            )
            raise UsageError(f"{where}: unknown key {key!r}{hint}")


def _type_name(value: object) -> str:
    return type(value).__name__


class _Reader:
    """Typed getters over one table, each error naming the file, the table and the key."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def _bad(self, key: str, expected: str) -> UsageError:
        value = self.data[key]
        return UsageError(
            f"{self.where}: {key} must be {expected}, got {value!r} ({_type_name(value)})"
        )

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self.data.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._bad(key, "an integer")
        return value

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self._bad(key, "a number")
        return None if value is None else float(value)

    def strings(self, key: str, *, split: bool = False) -> tuple[str, ...]:
        """A list of strings; a single string counts as a list of one (or shell-split)."""
        value = self.data.get(key, [])
        if isinstance(value, str):
            return tuple(shlex.split(value)) if split else (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return tuple(value)


def _coerce(name: str, value: object, default: object) -> object:
    """A parameter override (often a string from the command line) in its default's type."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    bad = UsageError(f"parameter {name!r} must be like {default!r}, got {value!r}")
    if isinstance(default, bool):
        if value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise bad
    if isinstance(default, int):
        if re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
        raise bad
    if isinstance(default, float):
        try:
            return float(value)
        except ValueError as exc:
            raise bad from exc
    if isinstance(default, list):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def resolve_params(
    declared: Mapping[str, Any], overrides: Mapping[str, object], source: str
) -> dict[str, object]:
    """The declared parameters with their defaults replaced by `overrides`."""
    values: dict[str, object] = dict(declared)
    for name, value in overrides.items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise UsageError(f"{source}: unknown parameter {name!r}; its parameters: {known}")
        values[name] = _coerce(name, value, declared[name])
    return values


def _substitute(value: object, params: Mapping[str, object]) -> object:
    if isinstance(value, str):
        match = _PARAM_REF.match(value)
        if match and match.group(1) in params:
            return params[match.group(1)]
        return value
    if isinstance(value, list):
        return [_substitute(item, params) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, params) for key, item in value.items()}
    return value


def _stage_tables(raw: object, source: str) -> list[tuple[str | None, Mapping[str, Any]]]:
    """`[[stages]]` (a list of tables with names) or `[stages.NAME]` (a table of tables)."""
    if isinstance(raw, Mapping):
        items: list[tuple[str | None, object]] = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        items = [(None, v) for v in raw]
    else:
        raise UsageError(f"{source}: stages must be a list of tables ([[stages]])")
    out: list[tuple[str | None, Mapping[str, Any]]] = []
    for index, (key, table) in enumerate(items):
        if not isinstance(table, Mapping):
            raise UsageError(f"{source}: stage {key or index} must be a table of settings")
        out.append((key, cast(Mapping[str, Any], table)))
    return out


def _parse_stage(key: str | None, table: Mapping[str, Any], index: int, source: str) -> StageSpec:
    label = key or table.get("name") or f"#{index}"
    where = f"{source}: stage {label!r}"
    _unknown_keys(table, STAGE_KEYS, where)
    read = _Reader(table, where)
    name = read.text("name") or key
    if name is None:
        raise UsageError(f'{where}: the stage has no name: add name = "..."')
    if key is not None and name != key:
        raise UsageError(f"{where}: its name {name!r} differs from its table key {key!r}")
    if "flags" in table and "extra_flags" in table:
        raise UsageError(f"{where}: give flags or extra_flags, not both")
    if "agent" in table and "agents" in table:
        raise UsageError(f"{where}: give agent or agents, not both")
    agent_key = "agents" if "agents" in table else "agent"
    kinds = read.strings(agent_key) if table.get(agent_key) is not None else ()
    if not kinds:
        raise UsageError(f'{where}: the stage has no agent: add agent = "claude" (or another)')
    prompt = read.text("prompt")
    if prompt is None:
        raise UsageError(f'{where}: the stage has no prompt: add prompt = "..."')
    worktree = read.text("worktree", "new") or "new"
    inherit_from = read.text("inherit_from")
    if worktree.startswith("inherit:"):  # shorthand: worktree = "inherit:implement"
        worktree, inherit_from = "inherit", worktree.partition(":")[2]
    depends_on = read.strings("depends_on")
    if worktree == "inherit" and inherit_from is None and len(depends_on) == 1:
        inherit_from = depends_on[0]  # the only upstream choice
    if worktree not in WORKTREE_MODES:
        raise UsageError(f"{where}: worktree must be 'new' or 'inherit', got {worktree!r}")
    parts = read.strings("parts")
    count = read.integer("count", 1)
    flags_key = "extra_flags" if "extra_flags" in table else "flags"
    return StageSpec(
        name=name,
        agent=kinds[0],
        agents=kinds if len(kinds) > 1 else (),
        prompt=prompt,
        model=read.text("model"),
        extra_flags=read.strings(flags_key, split=True),
        depends_on=depends_on,
        worktree=worktree,
        inherit_from=inherit_from,
        base_ref=read.text("base_ref"),
        count=1 if count is None else count,
        parts=parts,
        timeout_s=read.number("timeout_s"),
        retries=read.integer("retries", 0) or 0,
        when=read.text("when"),
        gate=read.text("gate"),
        rank=read.flag("rank"),
        judge=read.text("judge"),
        picks=read.text("picks"),
        interactive=read.flag("interactive"),
    )


def parse_workflow(
    data: Mapping[str, Any],
    source: str,
    params: Mapping[str, object] | None = None,
    *,
    default_name: str | None = None,
) -> WorkflowSpec:
    """Build a WorkflowSpec from plain data; `source` names the origin in every error.

    Checks keys and types only: run `flotilla.domain.dag.validate` for the graph.
    """
    if not isinstance(data, Mapping):
        raise UsageError(
            f"{source}: a workflow must be a table of settings, got {_type_name(data)}"
        )
    _unknown_keys(data, WORKFLOW_KEYS, source)
    declared = data.get("params", {})
    if not isinstance(declared, Mapping):
        raise UsageError(f"{source}: params must be a table of name = default value")
    values = resolve_params(declared, params or {}, source)
    body = cast(
        dict[str, Any], _substitute({k: v for k, v in data.items() if k != "params"}, values)
    )
    read = _Reader(body, source)
    name = read.text("name") or default_name
    if not name:
        raise UsageError(f'{source}: the workflow has no name: add name = "..."')
    tables = _stage_tables(body.get("stages", []), source)
    return WorkflowSpec(
        name=name,
        description=read.text("description", "") or "",
        task_prompt=read.text("task_prompt", "") or "",
        stages=tuple(_parse_stage(key, t, i, source) for i, (key, t) in enumerate(tables)),
        fail_fast=read.flag("fail_fast"),
        max_cost_usd=read.number("max_cost_usd"),
        max_tokens=read.integer("max_tokens"),
    )
