"""The store's claim query and the domain's pick_next agree, on generated task sets.

Each example gets a team of its own in one database, so examples do not see each
other's tasks. Stored states are set directly in the table (any mix of states is a
state the store can be in; the dependency counter is then recounted from scratch);
then claims are made until none is left, and each must be the task pick_next names
for the same tasks, while completions count the dependants down.
"""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tasks_support import ManualClock, open_dependencies_of

from flotilla.domain.tasks import TaskState, pick_next
from flotilla.orchestrator.tasks import TaskService
from flotilla.store import SqlStore
from flotilla.store.task_schema import tasks as tasks_table

KINDS = [None, "claude", "codex"]
CAPS = ["py", "go", "db"]
_teams = itertools.count()


@st.composite
def task_specs(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 7))
    specs = []
    for i in range(count):
        specs.append(
            {
                "priority": draw(st.integers(-1, 2)),
                "age_step": draw(st.sampled_from([0.0, 1.0])),  # 0: same created_at
                "deps": draw(st.lists(st.integers(0, max(i - 1, 0)), max_size=2, unique=True))
                if i
                else [],
                "agent_kind": draw(st.sampled_from(KINDS)),
                "requires": draw(st.lists(st.sampled_from(CAPS), max_size=2, unique=True)),
                "state": draw(
                    st.sampled_from(["queued", "queued", "queued", "done", "failed", "claimed"])
                ),
            }
        )
    return specs


claimers = st.tuples(st.sampled_from(KINDS), st.lists(st.sampled_from(CAPS), unique=True))


def check_agreement(store: SqlStore, specs: list[dict[str, Any]], who: tuple[Any, Any]) -> None:
    clock = ManualClock()
    service = TaskService(store, clock=clock)
    team = f"h{next(_teams)}"
    ids: list[str] = []
    for spec in specs:
        clock.advance(spec["age_step"])
        task = service.create(
            team,
            "t",
            priority=spec["priority"],
            depends_on=[ids[d] for d in spec["deps"]],
            agent_kind=spec["agent_kind"],
            requires=spec["requires"],
        )
        ids.append(task.id)
    with store.engine.begin() as conn:
        for task_id, spec in zip(ids, specs, strict=True):
            conn.execute(
                sa.update(tasks_table)
                .where(tasks_table.c.id == task_id)
                .values(state=spec["state"])
            )
        conn.execute(  # the states were set by hand, so count the open dependencies again
            sa.update(tasks_table)
            .where(tasks_table.c.team == team)
            .values(open_deps=open_dependencies_of(tasks_table.c.id))
        )
    kind, labels = who
    for _ in range(len(specs) + 1):
        expected = pick_next(service.list(team=team), agent_kind=kind, labels=labels, team=team)
        got = service.claim("prop", agent_kind=kind, labels=labels, team=team)
        assert (got and got.id) == (expected and expected.id)
        if got is None:
            return
        assert got.state is TaskState.CLAIMED
        if len(ids) % 2:  # sometimes finish it, which may free its dependants
            service.complete(got.id, "prop")
    raise AssertionError("claims did not run out")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=task_specs(), who=claimers)
def test_claim_query_agrees_with_pick_next(
    sql_store: SqlStore, specs: list[dict[str, Any]], who: tuple[Any, Any]
) -> None:
    check_agreement(sql_store, specs, who)
