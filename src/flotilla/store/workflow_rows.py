"""Rows of the workflow tables as frozen dataclasses, and their encoding to columns.

JSON columns (spec, options, facts, ranking, result, merged) are decoded into
plain Python values here; states become the domain's enums.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.domain.errors import UsageError
from flotilla.domain.workflow import StageState, WorkflowState
from flotilla.store.codec import dump_json

JUDGE = "judge"
CANDIDATE = "candidate"


@dataclass(frozen=True)
class WorkflowRow:
    id: str
    name: str
    project: str
    spec: dict[str, Any]
    task_prompt: str = ""
    state: WorkflowState = WorkflowState.PENDING
    options: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    ranking: dict[str, Any] | None = None
    winner: str | None = None
    merged: list[Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        return out


@dataclass(frozen=True)
class StageRow:
    workflow_id: str
    name: str
    position: int
    state: StageState = StageState.PENDING
    attempt: int = 0
    retry_base: int = 0
    outcome: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    facts: dict[str, Any] | None = None
    ranking: dict[str, Any] | None = None
    winner: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class StageWorkerRow:
    """One planned worker of one attempt of a stage (a candidate, or a rank stage's judge)."""

    workflow_id: str
    stage: str
    attempt: int
    idx: int
    name: str
    agent: str
    role: str = CANDIDATE
    part: str | None = None
    worker_id: str | None = None
    created_at: float = 0.0
    state: str | None = None  # the worker's state once it ended (None while it runs)
    outcome: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    result: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self.state is not None


_JSON = {
    "workflows": ("spec", "options", "ranking", "merged"),
    "workflow_stages": ("facts", "ranking"),
    "workflow_stage_workers": ("result",),
}
_NULLABLE_JSON = {"ranking", "merged", "facts", "result"}


def encode(table: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Column values for `fields` of a row of `table`: enums as values, JSON as text."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "state" and value is not None:
            value = getattr(value, "value", value)
        elif name in _JSON[table]:
            value = None if value is None and name in _NULLABLE_JSON else dump_json(value)
        out[name] = value
    return out


def _decoded(table: str, row: Mapping[Any, Any], names: list[str]) -> dict[str, Any]:
    values = {name: row[name] for name in names}
    for name in _JSON[table]:
        if values.get(name) is not None:
            values[name] = json.loads(values[name])
    return values


def decode_workflow(row: Mapping[Any, Any]) -> WorkflowRow:
    values = _decoded("workflows", row, [f.name for f in dataclasses.fields(WorkflowRow)])
    values["state"] = WorkflowState(values["state"])
    return WorkflowRow(**values)


def decode_stage(row: Mapping[Any, Any]) -> StageRow:
    values = _decoded("workflow_stages", row, [f.name for f in dataclasses.fields(StageRow)])
    values["state"] = StageState(values["state"])
    return StageRow(**values)


def decode_stage_worker(row: Mapping[Any, Any]) -> StageWorkerRow:
    names = [f.name for f in dataclasses.fields(StageWorkerRow)]
    return StageWorkerRow(**_decoded("workflow_stage_workers", row, names))


def check_fields(kind: type, fields: Mapping[str, Any], fixed: set[str]) -> None:
    """UsageError naming any field that `kind` has not, or that may not change."""
    allowed = {f.name for f in dataclasses.fields(kind)} - fixed
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise UsageError(
            f"cannot update {kind.__name__} field(s) {', '.join(unknown)}: "
            f"updatable fields are {', '.join(sorted(allowed))}"
        )
