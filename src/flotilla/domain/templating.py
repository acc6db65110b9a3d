"""Stage prompt templates: only known variables are replaced, every other brace stays.

Known variables:
    {task_prompt}
    {stages.NAME.FIELD}    FIELD: summary files diff_stat next_steps status tests result
    {stage_N_FIELD}        the same fields, N = the stage's index in the workflow (0-based)
    {part}                 the part a worker of a `parts` fan-out takes
    {worker_index}         1-based index of the worker within its stage
    {worker_count}         how many workers the stage has

No str.format: JSON or code in a prompt (`{"a": 1}`, `fn() { x }`) is left as it is.
A brace group that looks like ours (it starts with `stage` or `task`) but is not a
known variable is reported by `template_problems`, and left literal by `render`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("summary", "files", "diff_stat", "next_steps", "status", "tests", "result")
WORKER_VARIABLES = ("part", "worker_index", "worker_count")
_FIELD_ALT = "|".join(FIELDS)
_BRACE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_NAMED = re.compile(rf"^stages\.([A-Za-z][A-Za-z0-9_-]*)\.({_FIELD_ALT})$")
_POSITIONAL = re.compile(rf"^stage_(\d+)_({_FIELD_ALT})$")


@dataclass(frozen=True)
class StageFacts:
    """What a finished stage offers to the prompts of the stages after it."""

    summary: str = ""
    files: tuple[str, ...] = ()
    diff_stat: str = ""
    next_steps: tuple[str, ...] = ()
    status: str = ""
    tests: str = ""
    result: Mapping[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> str:
        if name == "files":
            return "\n".join(self.files)
        if name == "next_steps":
            return "\n".join(f"- {step}" for step in self.next_steps)
        if name == "result":
            return json.dumps(self.result, indent=2, sort_keys=True, default=str)
        text: str = getattr(self, name)
        return text


@dataclass(frozen=True)
class TemplateContext:
    task_prompt: str
    stages: Mapping[str, StageFacts] = field(default_factory=dict)
    order: Sequence[str] = ()  # every stage name by index, for {stage_N_FIELD}
    part: str | None = None
    worker_index: int = 1
    worker_count: int = 1


@dataclass(frozen=True)
class Reference:
    """One variable-like brace group of a template."""

    text: str  # as written, braces included
    kind: str  # task, stage, worker or unknown
    stage: str | None = None  # for named stage references
    index: int | None = None  # for positional stage references
    field: str | None = None


def references(template: str) -> list[Reference]:
    """Every known or suspicious variable of `template`, in order; literal braces excluded."""
    out: list[Reference] = []
    for match in _BRACE.finditer(template):
        body, text = match.group(1), match.group(0)
        named = _NAMED.match(body)
        positional = _POSITIONAL.match(body)
        if body == "task_prompt":
            out.append(Reference(text, "task"))
        elif named:
            out.append(Reference(text, "stage", stage=named.group(1), field=named.group(2)))
        elif positional:
            index = int(positional.group(1))
            out.append(Reference(text, "stage", index=index, field=positional.group(2)))
        elif body in WORKER_VARIABLES:
            out.append(Reference(text, "worker", field=body))
        elif body.lower().startswith(("stage", "task")):
            out.append(Reference(text, "unknown"))
    return out


def template_references(template: str, order: Sequence[str] = ()) -> set[str]:
    """Stage names `template` refers to; positional forms resolve through `order`."""
    names: set[str] = set()
    for ref in references(template):
        if ref.stage is not None:
            names.add(ref.stage)
        elif ref.index is not None and ref.index < len(order):
            names.add(order[ref.index])
    return names


def template_problems(
    template: str,
    *,
    stage: str,
    order: Sequence[str],
    upstream: frozenset[str],
    has_parts: bool,
) -> list[str]:
    """One line per bad variable in `stage`'s template: unknown, out of range, not upstream."""
    problems: list[str] = []
    where = f"stage {stage!r} prompt"
    for ref in references(template):
        name = ref.stage
        if ref.kind == "unknown":
            problems.append(
                f"{where} uses unknown variable {ref.text}: known are {{task_prompt}}, "
                f"{{stages.NAME.FIELD}}, {{stage_N_FIELD}} with FIELD one of {', '.join(FIELDS)}"
            )
            continue
        if ref.kind == "worker" and ref.field == "part" and not has_parts:
            problems.append(f"{where} uses {{part}} but the stage has no `parts`")
            continue
        if ref.index is not None:
            if ref.index >= len(order):
                problems.append(
                    f"{where} uses {ref.text} but the workflow has only {len(order)} stages "
                    f"(stage_0 to stage_{len(order) - 1})"
                )
                continue
            name = order[ref.index]
        if name is None:
            continue
        if name not in order:
            problems.append(f"{where} uses {ref.text} but there is no stage {name!r}")
        elif name not in upstream:
            problems.append(
                f"{where} uses {ref.text} but {name!r} is not upstream of {stage!r}: "
                f"add {name!r} to its depends_on"
            )
    return problems


def _stage_value(ctx: TemplateContext, name: str, field_name: str) -> str | None:
    facts = ctx.stages.get(name)
    if facts is not None:
        return facts.value(field_name)
    if name in ctx.order:
        return ""  # a stage of the workflow that produced nothing (skipped)
    return None


def _resolve(ref: Reference, ctx: TemplateContext) -> str | None:
    if ref.kind == "task":
        return ctx.task_prompt
    if ref.kind == "worker":
        if ref.field == "part":
            return ctx.part
        return str(ctx.worker_index if ref.field == "worker_index" else ctx.worker_count)
    if ref.kind == "stage" and ref.field is not None:
        name = ref.stage
        if ref.index is not None:
            name = ctx.order[ref.index] if ref.index < len(ctx.order) else None
        return None if name is None else _stage_value(ctx, name, ref.field)
    return None


def render(template: str, ctx: TemplateContext) -> str:
    """Replace the known variables of `template`; leave every other brace as it is."""
    by_text = {ref.text: ref for ref in references(template)}

    def substitute(match: re.Match[str]) -> str:
        ref = by_text.get(match.group(0))
        value = None if ref is None else _resolve(ref, ctx)
        return match.group(0) if value is None else value

    return _BRACE.sub(substitute, template)


def _describe_tests(tests: Mapping[str, Any] | None) -> str:
    if not tests:
        return "no test command"
    counts = []
    if tests.get("passed") is not None:
        counts.append(f"{tests['passed']} passed")
    if tests.get("failed") is not None:
        counts.append(f"{tests['failed']} failed")
    verdict = "passed" if tests.get("exit_code") == 0 else "failed"
    detail = ", ".join(counts)
    text = f"tests {verdict} (exit {tests.get('exit_code')}{', ' + detail if detail else ''})"
    command = tests.get("command")
    return f"{text}: {command}" if command else text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_STEPS_HEADING = re.compile(r"^\W*next steps?\b.*$", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+(.*\S)")


def next_steps_in(text: str) -> tuple[str, ...]:
    """The list under a "Next steps" heading of an agent's final words (agents whose
    CLI reports no next steps of their own); empty when there is none."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not _STEPS_HEADING.match(line):
            continue
        steps: list[str] = []
        for item in lines[index + 1 :]:
            found = _LIST_ITEM.match(item)
            if found:
                steps.append(found.group(1))
            elif item.strip():
                break  # the list ended (or there was none)
        return tuple(steps)
    return ()


def facts_from_result(result: Mapping[str, Any], status: str = "") -> StageFacts:
    """StageFacts from a worker's result dict (flotilla.domain.worker.Result.to_dict())."""
    files = tuple(
        str(item.get("path", "")) if isinstance(item, Mapping) else str(item)
        for item in result.get("files") or ()
    )
    insertions, deletions = int(result.get("insertions") or 0), int(result.get("deletions") or 0)
    diff_stat = (
        f"{_plural(len(files), 'file')} changed, {_plural(insertions, 'insertion')}(+), "
        f"{_plural(deletions, 'deletion')}(-)"
        if files
        else "no changes"
    )
    summary = str(result.get("summary") or "")
    steps = result.get("next_steps") or next_steps_in(summary)
    return StageFacts(
        summary=summary,
        files=files,
        diff_stat=diff_stat,
        next_steps=tuple(str(step) for step in steps),
        status=status or str(result.get("outcome") or ""),
        tests=_describe_tests(result.get("tests")),
        result=dict(result),
    )


def combine_facts(named: Sequence[tuple[str, StageFacts]]) -> StageFacts:
    """One StageFacts for a fan-out stage: each worker's facts, labelled with its name."""
    if len(named) == 1:
        return named[0][1]
    files: dict[str, None] = {}
    for _, facts in named:
        files.update(dict.fromkeys(facts.files))
    return StageFacts(
        summary="\n\n".join(f"[{name}]\n{facts.summary}" for name, facts in named),
        files=tuple(files),
        diff_stat="\n".join(f"{name}: {facts.diff_stat}" for name, facts in named),
        next_steps=tuple(f"{name}: {step}" for name, facts in named for step in facts.next_steps),
        status=", ".join(f"{name}: {facts.status}" for name, facts in named),
        tests="\n".join(f"{name}: {facts.tests}" for name, facts in named),
        result={"workers": {name: dict(facts.result) for name, facts in named}},
    )
