"""Workflow files (TOML, YAML, JSON) and the built-in templates -> WorkflowSpec.

The only workflow module that reads files. Syntax errors name the file, the
line and the column; everything after parsing is `workflow_schema`'s job.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flotilla.domain.errors import UsageError
from flotilla.domain.workflow import WorkflowSpec
from flotilla.orchestrator.workflow_schema import parse_workflow, resolve_params

__all__ = [
    "FORMATS",
    "builtin_names",
    "builtin_params",
    "load_builtin",
    "load_workflow",
    "parse_text",
    "parse_workflow",
    "resolve_workflow",
]

FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _syntax_error(source: str, fmt: str, line: int, column: int, problem: str) -> UsageError:
    return UsageError(f"{source}:{line}:{column}: invalid {fmt.upper()}: {problem}")


def parse_text(text: str, fmt: str, source: str) -> dict[str, Any]:
    """Parse `text` as `fmt` (toml, yaml or json) into a table; errors carry line and column."""
    if fmt == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            where = _TOML_WHERE.search(message)
            if where is None:  # "(at end of document)"
                lines = text.splitlines() or [""]
                line, column = len(lines), len(lines[-1]) + 1
            else:
                line, column = int(where.group(1)), int(where.group(2))
            problem = re.sub(r"\s*\(at [^)]*\)\s*$", "", message)
            raise _syntax_error(source, fmt, line, column, problem) from exc
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _syntax_error(source, fmt, exc.lineno, exc.colno, exc.msg) from exc
    elif fmt == "yaml":
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise _syntax_error(source, fmt, line, column, problem or "malformed") from exc
        except yaml.YAMLError as exc:
            raise _syntax_error(source, fmt, 1, 1, str(exc)) from exc
    else:
        raise UsageError(f"{source}: unknown format {fmt!r}: use toml, yaml or json")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{source}: the top level must be a table of workflow settings")
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"workflow file {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"workflow file {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise UsageError(f"workflow file {path} cannot be read: {exc.strerror or exc}") from exc


def _with_task(spec: WorkflowSpec, task_prompt: str | None) -> WorkflowSpec:
    return spec if task_prompt is None else dataclasses.replace(spec, task_prompt=task_prompt)


def load_workflow(
    path: Path | str,
    params: Mapping[str, object] | None = None,
    *,
    task_prompt: str | None = None,
) -> WorkflowSpec:
    """Load a .toml, .yaml, .yml or .json workflow file; `task_prompt` replaces the file's."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"workflow file {path} has an unknown extension: use .toml, .yaml, .yml or .json"
        )
    data = parse_text(_read(path), fmt, str(path))
    spec = parse_workflow(data, str(path), params, default_name=path.stem)
    return _with_task(spec, task_prompt)


def _templates() -> Any:
    return importlib.resources.files("flotilla.orchestrator").joinpath("templates")


def builtin_names() -> list[str]:
    """The names of the built-in workflow templates, sorted."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in _templates().iterdir()
        if entry.name.endswith(".toml")
    )


def _builtin_data(name: str) -> dict[str, Any]:
    if name not in builtin_names():
        raise UsageError(
            f"unknown workflow template {name!r}: choose one of {', '.join(builtin_names())} "
            "or give a workflow file"
        )
    text = _templates().joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_text(str(text), "toml", f"template {name}")


def builtin_params(name: str) -> dict[str, object]:
    """A built-in template's parameters and their default values."""
    declared = _builtin_data(name).get("params", {})
    return resolve_params(declared, {}, f"template {name}")


def load_builtin(
    name: str,
    params: Mapping[str, object] | None = None,
    *,
    task_prompt: str | None = None,
) -> WorkflowSpec:
    """A built-in template as a WorkflowSpec, with its parameters overridden by `params`."""
    spec = parse_workflow(_builtin_data(name), f"template {name}", params, default_name=name)
    return _with_task(spec, task_prompt)


def resolve_workflow(
    ref: str,
    params: Mapping[str, object] | None = None,
    *,
    task_prompt: str | None = None,
    cwd: Path | None = None,
) -> WorkflowSpec:
    """`fleet workflow run FILE|TEMPLATE`: a built-in name, else a file (relative to cwd)."""
    if ref in builtin_names():
        return load_builtin(ref, params, task_prompt=task_prompt)
    path = Path(ref)
    if not path.is_absolute() and cwd is not None:
        path = cwd / path
    if path.suffix.lower() in FORMATS or path.exists():
        return load_workflow(path, params, task_prompt=task_prompt)
    raise UsageError(
        f"unknown workflow {ref!r}: give a workflow file (.toml, .yaml, .json) "
        f"or a template: {', '.join(builtin_names())}"
    )
