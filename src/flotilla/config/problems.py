"""Turning pydantic's validation errors into one line each that names the key and its source."""

from __future__ import annotations

import datetime
import difflib
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from flotilla.config.keys import KeyPath, format_key
from flotilla.config.merge import Merged
from flotilla.config.schema import CUSTOM_ERROR, Config, known_keys
from flotilla.config.sources import DEFAULT_ORIGIN
from flotilla.counters import count

_EXPECTED = {
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "list_type": "must be an array",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}


def validate(merged: Merged, *, skip_missing: bool = False) -> tuple[Config | None, list[str]]:
    """The typed config, or None and one message per problem."""
    try:
        return Config.model_validate(merged.data), []
    except ValidationError as exc:
        count("config.invalid")  # reported to the user as problems, never swallowed
        errors = [e for e in exc.errors() if not (skip_missing and e["type"] == "missing")]
        return None, [describe(error, merged) for error in errors]


def where(origin: str) -> str:
    return "the defaults" if origin == DEFAULT_ORIGIN else origin


def describe(error: ErrorDetails, merged: Merged) -> str:
    path, shown = _key(error)
    origin = where(merged.blame(path))
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{shown}' in {origin}{_suggestion(path)}"
    if kind == "missing":
        return f"{shown} is required (in {origin})"
    if kind in _EXPECTED:
        return f"{shown} {_EXPECTED[kind]}, got {_describe_value(error['input'])} (in {origin})"
    ctx = error.get("ctx", {})
    if kind == "greater_than_equal":
        return f"{shown} must be >= {ctx['ge']} (in {origin})"
    if kind == "less_than_equal":
        return f"{shown} must be <= {ctx['le']} (in {origin})"
    if kind == "string_too_short":
        return f"{shown} must not be empty (in {origin})"
    message = error["msg"] if kind == CUSTOM_ERROR else error["msg"][:1].lower() + error["msg"][1:]
    return f"{shown} {message} (in {origin})"


def _key(error: ErrorDetails) -> tuple[KeyPath, str]:
    """The key path to blame (strings only) and the key as shown, with [index] for arrays."""
    path: list[str] = []
    shown = ""
    indexed = False
    loc: list[Any] = list(error["loc"])
    if error["type"] == CUSTOM_ERROR and "key" in error.get("ctx", {}):
        loc.append(error["ctx"]["key"])  # a model validator reports on the table
    for item in loc:
        if isinstance(item, int):
            shown += f"[{item}]"
            indexed = True
        elif item == "[key]":
            continue
        else:
            if not indexed:
                path.append(item)
            shown = f"{shown}.{format_key((item,))}" if shown else format_key((item,))
    return tuple(path), shown


def _suggestion(path: KeyPath) -> str:
    close = difflib.get_close_matches(path[-1], known_keys(path[:-1]), n=1, cutoff=0.7)
    return f"; did you mean '{format_key((*path[:-1], close[0]))}'?" if close else ""


def _describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return f"a date/time ({value.isoformat()})"
    return type(value).__name__
