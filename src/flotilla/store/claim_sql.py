"""The claim statements: the first claimable task in pick order (domain.tasks.pick_next,
in SQL), taken by one claimer, or on PostgreSQL the first N taken by N claimers at once.

A claim is an UPDATE over a sub-SELECT of the candidates. A group commit
(store/group_commit.py) brings many claims at once. On SQLite (in process, no round
trips) each is its own statement. On PostgreSQL, where each statement is a round trip
to the server, the claims of one shape (team, agent kind, labels) go in one statement:
the N best candidates, locked FOR UPDATE SKIP LOCKED and numbered in pick order, are
matched to the claimers in arrival order (claimer i gets what the i-th of N claims in a
row would have got), and their history entries are written by the same statement (a
data-modifying CTE).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from flotilla.domain.tasks import EventKind, Task, TaskState
from flotilla.store.codec import dump_json
from flotilla.store.task_schema import (
    INSERT_EVENT,
    decode_task,
    task_history,
    task_requires,
    tasks,
)

_cand = tasks.alias("cand")
_HISTORY_COLUMNS = ["task_id", "at", "kind", "actor", "message", "detail"]


class ClaimWant(NamedTuple):
    """Who claims, when, for how long, and what the task must fit (team, kind, labels)."""

    claimer: str
    now: float
    lease_s: float
    team: str | None = None
    agent_kind: str | None = None
    labels: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[str | None, str | None, tuple[str, ...]]:
        """Claims of one shape draw from the same candidates."""
        return (self.team, self.agent_kind, self.labels)

    @property
    def filters(self) -> tuple[bool, bool, bool]:
        """Which of team, agent kind and labels the candidates are filtered by."""
        return (self.team is not None, self.agent_kind is not None, bool(self.labels))

    @property
    def message(self) -> str:
        return f"claimed by {self.claimer} (lease {self.lease_s:g} s)"

    @property
    def detail(self) -> str:
        """The history entry's detail, as stored (JSON)."""
        return dump_json({"lease_s": self.lease_s})


def _candidates(by_team: bool, by_kind: bool, by_labels: bool) -> sa.Select[Any]:
    """Claimable tasks in pick order (unlimited): queued, dependencies done, fitting."""
    c, req = _cand.c, task_requires.c
    # "No unmet requirement" as a correlated scalar sub-SELECT ... LIMIT 1 IS NULL rather
    # than NOT EXISTS: PostgreSQL may turn NOT EXISTS into a hashed subplan that reads
    # every requirement of every task once per claim; this form is probed per candidate
    # row through the primary-key index, and the walk stops at the first fit.
    unmet = sa.select(sa.literal(1)).where(req.task_id == c.id)
    if by_labels:
        unmet = unmet.where(req.label.not_in(sa.bindparam("want_labels", expanding=True)))
    kind_ok: sa.ColumnElement[bool] = c.agent_kind.is_(None)
    if by_kind:
        kind_ok = sa.or_(kind_ok, c.agent_kind == sa.bindparam("want_kind"))
    candidate = (
        sa.select(c.id)
        .where(c.state == TaskState.QUEUED.value, c.open_deps == 0, kind_ok)
        .where(sa.or_(c.requires == "[]", unmet.limit(1).scalar_subquery().is_(None)))
        .order_by(c.priority.desc(), c.created_at, c.id)
    )
    if by_team:
        candidate = candidate.where(c.team == sa.bindparam("want_team"))
    return candidate


def _claimed_values(holder: Any, deadline: Any, now: Any) -> dict[str, Any]:
    return {
        "state": TaskState.CLAIMED.value,
        "assignee": holder,
        "lease_expires_at": deadline,
        "claimed_at": now,
        "heartbeat_at": now,
        "updated_at": now,
        "attempts": tasks.c.attempts + 1,
        "version": tasks.c.version + 1,
    }


@functools.cache
def claim_statement(by_team: bool, by_kind: bool, by_labels: bool) -> sa.Update:
    """One claim (SQLite; its history entry is the caller's). Built once per shape and
    reused, with bound parameters, so SQLAlchemy compiles it once (building it costs
    more than running it)."""
    candidate = _candidates(by_team, by_kind, by_labels).limit(1)
    values = _claimed_values(
        sa.bindparam("new_holder"), sa.bindparam("new_deadline"), sa.bindparam("now_at")
    )
    return (
        sa.update(tasks)
        .where(tasks.c.id == candidate.scalar_subquery(), tasks.c.state == TaskState.QUEUED.value)
        .values(**values)
        .returning(*tasks.c)
    )


def _shape_params(want: ClaimWant) -> dict[str, Any]:
    return {"want_team": want.team, "want_kind": want.agent_kind, "want_labels": list(want.labels)}


@functools.cache
def claim_many_statement(by_team: bool, by_kind: bool, by_labels: bool) -> sa.Select[Any]:
    """PostgreSQL: the claims of N wants of one shape in one statement, with their history
    entries; each returned row carries `want_ord`, the 1-based index of its want. The
    wants come as arrays (`_claim_many_params`), so the statement is built and compiled
    once per shape, whatever N."""
    candidate = (
        _candidates(by_team, by_kind, by_labels)
        .add_columns(_cand.c.priority, _cand.c.created_at)
        .limit(sa.bindparam("wanted"))
        .with_for_update(skip_locked=True, of=_cand)
        .subquery("candidates")
    )
    order = (candidate.c.priority.desc(), candidate.c.created_at, candidate.c.id)
    picked = sa.select(candidate.c.id, sa.func.row_number().over(order_by=order).label("ord")).cte(
        "picked"
    )
    want = (
        sa.func.unnest(
            sa.bindparam("holders", type_=ARRAY(sa.Text)),
            sa.bindparam("deadlines", type_=ARRAY(sa.Double)),
            sa.bindparam("nows", type_=ARRAY(sa.Double)),
            sa.bindparam("messages", type_=ARRAY(sa.Text)),
            sa.bindparam("details", type_=ARRAY(sa.Text)),
        )
        .table_valued(
            sa.column("holder", sa.Text),
            sa.column("deadline", sa.Double),
            sa.column("now_at", sa.Double),
            sa.column("message", sa.Text),
            sa.column("detail", sa.Text),
            with_ordinality="ord",
        )
        .render_derived(name="want", with_types=False)
    )
    claimed = (
        sa.update(tasks)
        .where(
            tasks.c.id == picked.c.id,
            picked.c.ord == want.c.ord,
            tasks.c.state == TaskState.QUEUED.value,
        )
        .values(**_claimed_values(want.c.holder, want.c.deadline, want.c.now_at))
        .returning(
            *tasks.c,
            want.c.ord.label("want_ord"),
            want.c.message.label("want_message"),
            want.c.detail.label("want_detail"),
        )
        .cte("claimed")
    )
    entry = sa.select(
        claimed.c.id,
        claimed.c.claimed_at,
        sa.literal(EventKind.CLAIMED.value),
        claimed.c.assignee,
        claimed.c.want_message,
        claimed.c.want_detail,
    )
    event = sa.insert(task_history).from_select(_HISTORY_COLUMNS, entry).cte("claim_events")
    return sa.select(claimed).add_cte(event)


def _claim_many_params(wants: Sequence[ClaimWant]) -> dict[str, Any]:
    """The parameters of `claim_many_statement` for `wants` (all of one shape)."""
    return {
        **_shape_params(wants[0]),
        "wanted": len(wants),
        "holders": [w.claimer for w in wants],
        "deadlines": [w.now + w.lease_s for w in wants],
        "nows": [w.now for w in wants],
        "messages": [w.message for w in wants],
        "details": [w.detail for w in wants],
    }


def claim_many(conn: Connection, wants: Sequence[ClaimWant], *, pg: bool) -> list[Task | None]:
    """The claims of `wants` in turn, in the caller's write transaction, with their history
    entries: what each claimer got (None: nothing claimable for it)."""
    return _claim_many_pg(conn, wants) if pg else _claim_each(conn, wants)


def _claim_many_pg(conn: Connection, wants: Sequence[ClaimWant]) -> list[Task | None]:
    got: list[Task | None] = [None] * len(wants)
    shapes: dict[tuple[Any, ...], list[int]] = {}
    for index, want in enumerate(wants):
        shapes.setdefault(want.shape, []).append(index)
    for indexes in shapes.values():
        group = [wants[i] for i in indexes]
        statement = claim_many_statement(*group[0].filters)
        for row in conn.execute(statement, _claim_many_params(group)):
            got[indexes[row.want_ord - 1]] = decode_task(row._mapping)
    return got


def _claim_each(conn: Connection, wants: Sequence[ClaimWant]) -> list[Task | None]:
    """SQLite (one process, no round trips): a statement per claim, then the history
    entries in one multi-row insert."""
    got: list[Task | None] = []
    history: list[dict[str, Any]] = []
    for want in wants:
        holder = {
            "new_holder": want.claimer,
            "now_at": want.now,
            "new_deadline": want.now + want.lease_s,
        }
        row = conn.execute(
            claim_statement(*want.filters), {**holder, **_shape_params(want)}
        ).first()
        got.append(None if row is None else decode_task(row._mapping))
        if row is not None:
            history.append(
                {
                    "task_id": row.id,
                    "at": want.now,
                    "kind": EventKind.CLAIMED.value,
                    "actor": want.claimer,
                    "message": want.message,
                    "detail": want.detail,
                }
            )
    if history:
        conn.execute(INSERT_EVENT, history)
    return got
