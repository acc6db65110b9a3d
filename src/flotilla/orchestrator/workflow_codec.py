"""Workflow values <-> the plain JSON the store keeps: specs, stage facts, ranking tables.

A workflow's spec is stored whole when it starts, so a restarted daemon (or a
workflow file edited since) runs exactly what was started. A stage field added
later (`interactive`, say) takes its default in a spec stored before it existed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from flotilla.domain.ranking import Ranked
from flotilla.domain.templating import StageFacts
from flotilla.domain.workflow import StageSpec, WorkflowSpec

_TUPLE_FIELDS = {f.name for f in dataclasses.fields(StageSpec) if f.default == ()}


def spec_to_dict(spec: WorkflowSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def spec_from_dict(raw: Mapping[str, Any]) -> WorkflowSpec:
    stages = []
    for stage in raw.get("stages", ()):
        values: dict[str, Any] = {
            key: tuple(value) if key in _TUPLE_FIELDS else value for key, value in stage.items()
        }
        stages.append(StageSpec(**values))
    return WorkflowSpec(**{**raw, "stages": tuple(stages)})


def facts_to_dict(facts: StageFacts) -> dict[str, Any]:
    out = dataclasses.asdict(facts)
    out["result"] = dict(facts.result)
    return out


def facts_from_dict(raw: Mapping[str, Any]) -> StageFacts:
    return StageFacts(
        summary=str(raw.get("summary", "")),
        files=tuple(raw.get("files", ())),
        diff_stat=str(raw.get("diff_stat", "")),
        next_steps=tuple(raw.get("next_steps", ())),
        status=str(raw.get("status", "")),
        tests=str(raw.get("tests", "")),
        result=dict(raw.get("result", {})),
    )


def ranked_to_dict(ranked: Ranked) -> dict[str, Any]:
    out: dict[str, Any] = {
        "place": ranked.place,
        "name": ranked.name,
        "reason": ranked.reason,
        "tied_with": list(ranked.tied_with),
    }
    c = ranked.candidate
    if c is not None:
        tests = c.tests
        out["facts"] = {
            "outcome": c.outcome,
            "tests": None if tests is None else dataclasses.asdict(tests),
            "gates": [[name, passed] for name, passed in c.gates],
            "diff_size": c.diff_size,
            "files_changed": c.files_changed,
        }
    return out


def ranked_from_dicts(rows: Sequence[Mapping[str, Any]]) -> list[Ranked]:
    """Back to Ranked (without candidates: the judge functions need places and names)."""
    return [
        Ranked(
            place=int(row["place"]),
            name=str(row["name"]),
            reason=str(row["reason"]),
            tied_with=tuple(row.get("tied_with", ())),
        )
        for row in rows
    ]


def merge_rows(new: Sequence[Ranked], old: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """New places and reasons, each row keeping the facts it was ranked on."""
    facts = {row["name"]: row.get("facts") for row in old}
    out = []
    for ranked in new:
        row = ranked_to_dict(ranked)
        if facts.get(ranked.name) is not None:
            row["facts"] = facts[ranked.name]
        out.append(row)
    return out
