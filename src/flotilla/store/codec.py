"""Worker <-> row: enums as their string values, `result` and `settings` as JSON text."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import orjson

from flotilla.domain.errors import UsageError
from flotilla.domain.states import Outcome, WorkerState
from flotilla.domain.worker import Worker

WORKER_FIELDS = frozenset(f.name for f in dataclasses.fields(Worker))
# Fields update_worker may change: the id is the identity, seq the admission order.
UPDATABLE_FIELDS = WORKER_FIELDS - {"id", "seq"}


_DUMP_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def dump_json(value: Any) -> str:
    """Compact JSON with sorted keys (orjson: several times json.dumps's speed)."""
    return orjson.dumps(value, option=_DUMP_OPTIONS).decode()


def to_state(value: WorkerState | str) -> WorkerState:
    try:
        return WorkerState(value)
    except ValueError as exc:
        choices = ", ".join(s.value for s in WorkerState)
        raise UsageError(f"{value!r} is not a worker state: use one of {choices}") from exc


def to_outcome(value: Outcome | str) -> Outcome:
    try:
        return Outcome(value)
    except ValueError as exc:
        choices = ", ".join(o.value for o in Outcome)
        raise UsageError(f"{value!r} is not an outcome: use one of {choices}") from exc


def encode_value(name: str, value: Any) -> Any:
    """One Worker field's value as stored in its column."""
    if name == "state":
        return to_state(value).value
    if name == "outcome":
        return None if value is None else to_outcome(value).value
    if name == "result":
        return None if value is None else dump_json(value)
    if name == "settings":
        return dump_json(value or {})
    return value


def encode_worker(worker: Worker) -> dict[str, Any]:
    return {name: encode_value(name, getattr(worker, name)) for name in WORKER_FIELDS}


def encode_update(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check the names of update_worker's fields and encode their values."""
    unknown = sorted(set(fields) - UPDATABLE_FIELDS)
    if unknown:
        raise UsageError(
            f"cannot update worker field(s) {', '.join(unknown)}: "
            f"updatable fields are {', '.join(sorted(UPDATABLE_FIELDS))}"
        )
    return {name: encode_value(name, value) for name, value in fields.items()}


def decode_worker(row: Mapping[Any, Any]) -> Worker:
    values = {name: row[name] for name in WORKER_FIELDS}
    values["state"] = WorkerState(values["state"])
    values["outcome"] = None if values["outcome"] is None else Outcome(values["outcome"])
    values["result"] = None if values["result"] is None else json.loads(values["result"])
    values["settings"] = json.loads(values["settings"])
    values["interactive"] = bool(values["interactive"])
    values["quick"] = bool(values["quick"])
    return Worker(**values)
