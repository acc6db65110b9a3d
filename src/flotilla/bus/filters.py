"""Subscription filters: which events a subscriber wants, by kind prefix, subject, team.

A kind prefix matches whole dotted segments: `worker` matches `worker` and
`worker.state` but not `workers.x`. Within one dimension any value may match;
across dimensions all must (kinds AND subjects AND teams). An empty dimension
matches everything. Pure: the in-process transport applies `matches`, the store
turns the same filter into SQL for a catch-up read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flotilla.bus.envelope import Envelope, Event
from flotilla.domain.errors import UsageError

MAX_TERMS = 50


@dataclass(frozen=True)
class EventFilter:
    kinds: tuple[str, ...] = ()  # dotted prefixes, without a trailing dot
    subjects: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        kinds: Iterable[str] | str | None = None,
        subjects: Iterable[str] | str | None = None,
        teams: Iterable[str] | str | None = None,
    ) -> EventFilter:
        """From user input: comma-separated texts or lists; `*` or nothing means any."""
        return cls(
            kinds=tuple(sorted(set(_terms(kinds, "kind")))),
            subjects=frozenset(_terms(subjects, "subject")),
            teams=frozenset(_terms(teams, "team")),
        )

    @property
    def everything(self) -> bool:
        return not (self.kinds or self.subjects or self.teams)

    def matches(self, envelope: Envelope) -> bool:
        if self.kinds and not any(kind_matches(p, envelope.kind) for p in self.kinds):
            return False
        if self.subjects and envelope.subject not in self.subjects:
            return False
        return not self.teams or envelope.team in self.teams

    def select(self, events: Sequence[Event]) -> list[Event]:
        """The events that match, in their order."""
        return [event for event in events if self.matches(event.envelope)]

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "kinds": list(self.kinds),
            "subjects": sorted(self.subjects),
            "teams": sorted(self.teams),
        }


def kind_matches(prefix: str, kind: str) -> bool:
    return kind == prefix or kind.startswith(prefix + ".")


def _terms(raw: Iterable[str] | str | None, what: str) -> list[str]:
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    terms: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"a {what} filter is a text, not {type(item).__name__}")
        term = item.strip().rstrip(".") if what == "kind" else item.strip()
        if term == "*":
            return []  # any value: this dimension does not narrow
        if not term:
            continue
        if len(term) > 128:
            raise UsageError(f"the {what} filter {term[:20]!r}... is longer than 128 characters")
        terms.append(term)
    if len(terms) > MAX_TERMS:
        raise UsageError(f"at most {MAX_TERMS} {what} filters at once, got {len(terms)}")
    return terms
