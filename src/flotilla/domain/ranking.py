"""Rank competing candidates by facts: tests, gates, then diff size. A tie stays a tie.

Order, first difference decides: the run finished (not an error, timeout or
cancel); tests passed (exit 0) beats no test command beats tests failed; more
tests passed; fewer tests failed; fewer extra gates failed; changed something
beats changed nothing; smaller diff. Equal facts share a place (competition
ranking: 1, 1, 3) and name each other in `tied_with`, so a judge can break it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flotilla.domain.errors import UsageError
from flotilla.domain.states import Outcome
from flotilla.domain.worker import TestReport

# Outcomes of a run that got to the end; the rest (error, timed_out, ...) did not.
FINISHED_OUTCOMES = frozenset(
    {Outcome.SUCCESS.value, Outcome.NO_CHANGES.value, Outcome.TESTS_FAILED.value}
)


@dataclass(frozen=True)
class Candidate:
    name: str
    outcome: str | None = None  # an Outcome value; None counts as finished
    tests: TestReport | None = None  # None: the project has no test command
    gates: tuple[tuple[str, bool], ...] = ()  # extra gates (lint, types): (name, passed)
    diff_size: int = 0  # insertions + deletions
    files_changed: int = 0

    @property
    def finished(self) -> bool:
        return self.outcome is None or self.outcome in FINISHED_OUTCOMES

    @property
    def changed(self) -> bool:
        return self.files_changed > 0 or self.diff_size > 0

    @property
    def failed_gates(self) -> tuple[str, ...]:
        return tuple(name for name, passed in self.gates if not passed)

    @classmethod
    def from_result(
        cls, name: str, result: Mapping[str, Any], gates: Sequence[tuple[str, bool]] = ()
    ) -> Candidate:
        """From a worker's result dict (flotilla.domain.worker.Result.to_dict())."""
        raw = result.get("tests")
        tests = None
        if isinstance(raw, Mapping):
            tests = TestReport(
                command=str(raw.get("command", "")),
                exit_code=int(raw.get("exit_code", 1)),
                passed=raw.get("passed"),
                failed=raw.get("failed"),
            )
        return cls(
            name=name,
            outcome=result.get("outcome"),
            tests=tests,
            gates=tuple(gates),
            diff_size=int(result.get("insertions") or 0) + int(result.get("deletions") or 0),
            files_changed=len(result.get("files") or ()),
        )


@dataclass(frozen=True)
class Ranked:
    place: int  # 1 is the winner; tied candidates share a place
    name: str
    reason: str  # one line: why this place
    tied_with: tuple[str, ...] = ()
    candidate: Candidate | None = field(default=None, compare=False)


# (key index, what a better value means) for the comparison phrases
_KEY_NAMES = ("finished", "tests", "passed", "failed", "gates", "changed", "diff")


def _key(c: Candidate) -> tuple[int, int, int, int, int, int, int]:
    tests = c.tests
    verdict = 1 if tests is None else 0 if tests.ok else 2
    passed = tests.passed if tests is not None and tests.passed is not None else 0
    failed = tests.failed if tests is not None and tests.failed is not None else 0
    return (
        0 if c.finished else 1,
        verdict,
        -passed,
        failed,
        len(c.failed_gates),
        0 if c.changed else 1,
        c.diff_size,
    )


def _tests_text(c: Candidate) -> str:
    tests = c.tests
    if tests is None:
        return "no test command"
    counts = [
        f"{n} {word}" for n, word in ((tests.passed, "passed"), (tests.failed, "failed")) if n
    ]
    detail = f" ({', '.join(counts)})" if counts else f" (exit {tests.exit_code})"
    return ("tests passed" if tests.ok else "tests failed") + detail


def _facts(c: Candidate) -> str:
    parts = [] if c.finished else [f"run did not finish ({c.outcome})"]
    parts.append(_tests_text(c))
    if c.gates:
        failed = c.failed_gates
        parts.append(f"gates failed: {', '.join(failed)}" if failed else "all gates passed")
    if c.changed:
        parts.append(f"{c.diff_size} lines changed in {c.files_changed} files")
    else:
        parts.append("changed nothing")
    return "; ".join(parts)


def _versus(c: Candidate, above: Candidate, index: int) -> str:
    """Why `c` ranks below `above`, from the first fact where they differ."""
    what = _KEY_NAMES[index]
    if what == "finished":
        return f"its run did not finish ({c.outcome}) while {above.name}'s did"
    if what == "tests":
        return f"{_tests_text(c)} while {above.name}'s {_tests_text(above)}"
    if what in ("passed", "failed"):
        return f"{_tests_text(c)}, {above.name} did better: {_tests_text(above)}"
    if what == "gates":
        mine = ", ".join(c.failed_gates)
        return f"gates failed ({mine}) where {above.name} failed fewer"
    if what == "changed":
        return f"changed nothing while {above.name} changed {above.files_changed} files"
    return f"larger diff ({c.diff_size} lines) than {above.name} ({above.diff_size} lines)"


def rank(candidates: Sequence[Candidate]) -> list[Ranked]:
    """Best first; equal facts share a place and name each other in `tied_with`."""
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise UsageError(f"candidate names must be unique, got {', '.join(names)}")
    ordered = sorted(candidates, key=lambda c: (_key(c), c.name))
    groups: list[list[Candidate]] = []
    for c in ordered:
        if groups and _key(groups[-1][0]) == _key(c):
            groups[-1].append(c)
        else:
            groups.append([c])
    out: list[Ranked] = []
    place = 1
    previous: Candidate | None = None
    for group in groups:
        for c in group:
            others = tuple(o.name for o in group if o is not c)
            if previous is None:
                reason = f"best: {_facts(c)}"
            else:
                pairs = zip(_key(c), _key(previous), strict=True)
                index = next(i for i, (a, b) in enumerate(pairs) if a != b)
                reason = f"below {previous.name}: {_versus(c, previous, index)}"
            if others:
                reason += f"; tied with {', '.join(others)} on every fact"
            out.append(Ranked(place, c.name, reason, others, c))
        previous = group[0]
        place += len(group)
    return out


def winner(ranked: Sequence[Ranked]) -> str | None:
    """The single candidate in first place, or None when first place is tied (or empty)."""
    first = [r for r in ranked if r.place == 1]
    return first[0].name if len(first) == 1 else None


def apply_judge(
    ranked: Sequence[Ranked], judge_choice: str, judge_reason: str = "", *, override: bool = False
) -> list[Ranked]:
    """Let a judge's choice break a tie among the tied top candidates.

    Without `override` the choice must be one of the candidates tied for first
    place (a UsageError otherwise) and the facts' order stays. With `override`
    (a judge asked explicitly) the choice takes first place whatever the facts.
    """
    names = [r.name for r in ranked]
    if judge_choice not in names:
        raise UsageError(f"the judge chose {judge_choice!r}, which is not one of {names}")
    top = [r for r in ranked if r.place == 1]
    if not override and judge_choice not in {r.name for r in top}:
        raise UsageError(
            f"the judge chose {judge_choice!r}, which is not tied for first place "
            f"({', '.join(r.name for r in top)})"
        )
    why = f": {judge_reason}" if judge_reason else ""
    chosen = next(r for r in ranked if r.name == judge_choice)
    if override:
        rest = [r for r in ranked if r is not chosen]
        lead = replace(chosen, place=1, tied_with=(), reason=f"chosen by the judge{why}")
        return [lead] + [
            replace(
                r,
                place=r.place + (1 if r.place <= chosen.place else 0),
                tied_with=tuple(n for n in r.tied_with if n != chosen.name),
            )
            for r in rest
        ]
    if len(top) == 1:
        return list(ranked)
    losers = tuple(r.name for r in top if r is not chosen)
    lead = replace(
        chosen,
        tied_with=(),
        reason=f"{chosen.reason.split('; tied with')[0]}; the judge chose it over "
        f"{', '.join(losers)}{why}",
    )
    out = [lead]
    for r in top:
        if r is not chosen:
            out.append(
                replace(
                    r,
                    place=2,
                    tied_with=tuple(n for n in losers if n != r.name),
                    reason=f"tied with {chosen.name} on facts; the judge chose {chosen.name}{why}",
                )
            )
    out += [r for r in ranked if r.place != 1]
    return out


_WINNER_LINE = re.compile(r"^\W*winner\W*[:=]\s*[`'\"*]*([A-Za-z0-9._-]+)", re.I | re.M)
_WINNER_JSON = re.compile(r'"winner"\s*:\s*"([^"]+)"')


def parse_judge_choice(text: str, names: Sequence[str]) -> str | None:
    """The candidate a judge's answer names: a `WINNER: name` line, a JSON object with
    "winner", or else the only candidate name mentioned. None if it cannot tell."""
    for match in _WINNER_LINE.finditer(text):
        if match.group(1) in names:
            return match.group(1)
    for match in _WINNER_JSON.finditer(text):
        if match.group(1) in names:
            return match.group(1)
    mentioned = [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]
    return mentioned[0] if len(mentioned) == 1 else None


def tie_break_prompt(task_prompt: str, tied: Sequence[Ranked], details: Mapping[str, str]) -> str:
    """The prompt for a judge agent asked to break a tie between `tied` candidates."""
    blocks = [
        f"## {r.name}\nfacts: {r.reason}\n{details.get(r.name, '').strip()}".rstrip() for r in tied
    ]
    return (
        "Several candidates implemented the same task and tie on the facts "
        "(tests, gates, diff size). Compare their work and choose the best one.\n\n"
        f"# Task\n{task_prompt}\n\n# Candidates\n" + "\n\n".join(blocks) + "\n\n"
        "Answer with one line `WINNER: <name>` followed by one paragraph saying why."
    )
