"""Helpers of the task tests (imported by bare name; not collected)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flotilla.store import SqlStore
from flotilla.store.task_schema import task_dependencies, tasks


class ManualClock:
    """Time as the test says: leases expire when the test moves the clock, not by sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def open_dependencies_of(task_id: Any) -> Any:
    """SQL: how many dependencies of `task_id` (a column or value) are not done."""
    blocker = tasks.alias("blocker")
    deps = task_dependencies.c
    return (
        sa.select(sa.func.count())
        .select_from(task_dependencies.join(blocker, deps.depends_on == blocker.c.id))
        .where(deps.task_id == task_id, blocker.c.state != "done")
        .scalar_subquery()
    )


def assert_dependency_counts_hold(store: SqlStore) -> None:
    """Every task's stored open_deps equals the count from its dependencies' states."""
    query = sa.select(tasks.c.id, tasks.c.open_deps, open_dependencies_of(tasks.c.id))
    with store.engine.connect() as conn:
        wrong = [tuple(row) for row in conn.execute(query) if row[1] != row[2]]
    assert wrong == [], f"(task, stored, actual) open dependency counts differ: {wrong}"
