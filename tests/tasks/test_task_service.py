"""TaskService over the real store, on SQLite and PostgreSQL: create, list, claim order,
dependencies, capabilities, leases, holders, updates and history."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from tasks_support import ManualClock

from flotilla import counters
from flotilla.domain.errors import IllegalTransition, NotFound, UsageError
from flotilla.domain.tasks import EventKind, NotHolder, Readiness, Task, TaskState
from flotilla.orchestrator.tasks import TaskService
from flotilla.store import SqlStore, open_store
from flotilla.store.migrate import alembic_config, current_revision, head_revision
from flotilla.store.schema import metadata
from flotilla.store.task_sql import TaskStale

S = TaskState


def kinds(service: TaskService, task: Task) -> list[str]:
    return [event.kind.value for event in service.history(task.id)]


def test_migration_r0003_builds_the_task_tables(sql_store: SqlStore) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_revision("r0003_tasks").down_revision == "0002"
    assert current_revision(sql_store.engine) == head_revision()
    names = set(sa.inspect(sql_store.engine).get_table_names())
    assert {"tasks", "task_dependencies", "task_labels", "task_requires", "task_history"} <= names
    with sql_store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": _task_tables_only})
        assert compare_metadata(context, metadata) == []


def _task_tables_only(
    obj: Any, _name: str | None, type_: str, _reflected: bool, _compare_to: Any
) -> bool:
    """The drift check of this folder looks at the task tables (others have their own)."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is not None and str(table.name).startswith("task")


def test_create_get_and_list(tasks: TaskService, clock: ManualClock) -> None:
    first = tasks.create(
        "red",
        "  Write the parser ",
        description="details",
        labels=["parser", "p1"],
        priority=3,
        created_by="lead",
    )
    clock.advance(1)
    second = tasks.create("red", "Review", labels=["review"], depends_on=[first.id])
    clock.advance(1)
    other = tasks.create("blue", "Elsewhere")
    assert first.title == "Write the parser" and first.state is S.QUEUED
    assert first.id.startswith("t-") and first.version == 0
    assert tasks.get(first.id) == first
    assert tasks.get(second.id).depends_on == (first.id,)
    assert [t.id for t in tasks.list()] == [first.id, second.id, other.id]
    assert [t.id for t in tasks.list(team="red")] == [first.id, second.id]
    assert [t.id for t in tasks.list(label="review")] == [second.id]
    assert [t.id for t in tasks.list(state="claimed")] == []
    assert [t.id for t in tasks.list(team="red", limit=1)] == [first.id]
    tasks.claim("alice", team="blue")
    assert [t.id for t in tasks.list(assignee="alice")] == [other.id]
    assert [t.id for t in tasks.list(state=[S.CLAIMED, "done"])] == [other.id]
    assert tasks.history(first.id)[0].message == "created by lead in team red"


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"title": "  "}, "the task title is empty"),
        ({"team": ""}, "the team name '' is not valid"),
        ({"depends_on": ["t-nope"]}, "unknown dependency 't-nope'"),
        ({"labels": ["has space"]}, "label 'has space' is not valid"),
        ({"priority": "high"}, "priority 'high' is not an integer"),
        ({"requires": "python"}, "as a list, not the single string"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    tasks: TaskService, kwargs: dict[str, object], complaint: str
) -> None:
    values: dict[str, object] = {"team": "red", "title": "t"}
    values.update(kwargs)
    with pytest.raises(UsageError, match=complaint) as caught:
        tasks.create(**values)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    assert tasks.list() == []


def test_unknown_task_ids_are_not_found(tasks: TaskService) -> None:
    for call in (
        lambda: tasks.get("t-missing"),
        lambda: tasks.history("t-missing"),
        lambda: tasks.heartbeat("t-missing", "alice"),
        lambda: tasks.complete("t-missing", "alice"),
        lambda: tasks.update("t-missing", title="x"),
        lambda: tasks.assign("t-missing", "bob"),
    ):
        with pytest.raises(NotFound, match="no task with id 't-missing'"):
            call()


def test_claim_order_is_priority_then_age(tasks: TaskService, clock: ManualClock) -> None:
    made = []
    for priority in (0, 5, 0, 5, -1):
        made.append(tasks.create("red", f"p{priority}", priority=priority))
        clock.advance(1)
    claimed = [tasks.claim(f"c{i}", team="red") for i in range(6)]
    expected = [made[1], made[3], made[0], made[2], made[4]]
    assert [t.id for t in claimed[:5] if t] == [t.id for t in expected]
    assert claimed[5] is None
    assert all(t is not None and t.state is S.CLAIMED for t in claimed[:5])


def test_claim_stays_within_its_team(tasks: TaskService) -> None:
    tasks.create("blue", "blue work")
    assert tasks.claim("alice", team="red") is None
    got = tasks.claim("alice")  # no team: any team
    assert got is not None and got.team == "blue"


def test_dependencies_gate_claims(tasks: TaskService, clock: ManualClock) -> None:
    base = tasks.create("red", "base", priority=0)
    clock.advance(1)
    top = tasks.create("red", "needs base", priority=9, depends_on=[base.id])
    assert tasks.readiness(top.id) == (Readiness.WAITING, {base.id: S.QUEUED})
    got = tasks.claim("alice")
    assert got is not None and got.id == base.id  # the urgent one waits for its dependency
    assert tasks.claim("bob") is None
    with pytest.raises(IllegalTransition, match=f"waits for its dependencies {base.id}"):
        tasks.assign(top.id, "bob")
    tasks.complete(base.id, "alice", {"ok": True})
    assert tasks.readiness(top.id)[0] is Readiness.READY
    got = tasks.claim("bob")
    assert got is not None and got.id == top.id


def test_failed_dependency_blocks(tasks: TaskService) -> None:
    base = tasks.create("red", "base")
    top = tasks.create("red", "top", depends_on=[base.id])
    tasks.claim("alice")
    tasks.fail(base.id, "alice", "tests do not pass")
    assert tasks.readiness(top.id)[0] is Readiness.BLOCKED
    assert tasks.claim("bob") is None
    tasks.requeue(base.id, "lead", reason="fixed the fixture")
    assert tasks.claim("bob") is not None  # the base again, not the top
    assert tasks.get(top.id).state is S.QUEUED


def test_capability_match(tasks: TaskService, clock: ManualClock) -> None:
    codex_only = tasks.create("red", "codex only", agent_kind="codex", priority=3)
    needs_db = tasks.create("red", "needs db", requires=["db", "python"], priority=2)
    anyone = tasks.create("red", "anyone", priority=1)
    got = tasks.claim("a", agent_kind="claude", labels=["python"])
    assert got is not None and got.id == anyone.id
    assert tasks.claim("b", agent_kind="claude", labels=["python"]) is None
    got = tasks.claim("c", agent_kind="claude", labels=["db", "python", "go"])
    assert got is not None and got.id == needs_db.id
    assert tasks.claim("d") is None  # no kind given: a kind-restricted task is not for it
    got = tasks.claim("e", agent_kind="codex")
    assert got is not None and got.id == codex_only.id


def test_heartbeat_extends_only_for_the_holder(tasks: TaskService, clock: ManualClock) -> None:
    task = tasks.create("red", "t")
    claimed = tasks.claim("alice", lease_s=30)
    assert claimed is not None and claimed.lease_expires_at == clock.now + 30
    clock.advance(20)
    renewed = tasks.heartbeat(task.id, "alice", lease_s=30)
    assert renewed.lease_expires_at == clock.now + 30 and renewed.heartbeat_at == clock.now
    clock.advance(20)  # 40 s after the claim: expired without the heartbeat
    assert tasks.expire_leases() == []
    assert tasks.get(task.id).state is S.CLAIMED
    with pytest.raises(NotHolder, match="held by alice, not mallory"):
        tasks.heartbeat(task.id, "mallory")
    assert tasks.get(task.id).lease_expires_at == renewed.lease_expires_at


def test_an_expired_lease_returns_the_task_to_the_queue(
    tasks: TaskService, clock: ManualClock
) -> None:
    task = tasks.create("red", "t")
    tasks.claim("alice", lease_s=10)
    clock.advance(11)
    expired = tasks.expire_leases()
    assert [t.id for t in expired] == [task.id]
    now = tasks.get(task.id)
    assert now.state is S.QUEUED and now.assignee is None and now.lease_expires_at is None
    last = tasks.history(task.id)[-1]
    assert last.kind is EventKind.LEASE_EXPIRED
    assert last.message == "lease of alice expired; back in the queue"
    assert last.detail["holder"] == "alice"
    with pytest.raises(NotHolder, match="is queued, not claimed"):
        tasks.complete(task.id, "alice", "late")
    again = tasks.claim("bob")
    assert again is not None and again.id == task.id and again.attempts == 2
    assert kinds(tasks, task) == ["created", "claimed", "lease_expired", "claimed"]


def test_a_claim_that_finds_nothing_reaps_expired_leases(
    tasks: TaskService, clock: ManualClock
) -> None:
    task = tasks.create("red", "t")
    tasks.claim("alice", lease_s=5)
    clock.advance(6)
    got = tasks.claim("bob")  # no sweep ran, but the claim finds the expired task
    assert got is not None and got.id == task.id and got.assignee == "bob"
    assert kinds(tasks, task)[-2:] == ["lease_expired", "claimed"]


def test_real_time_lease_expiry(sql_store: SqlStore) -> None:
    service = TaskService(sql_store)  # the real clock
    task = service.create("red", "t")
    service.claim("alice", lease_s=0.2)
    assert service.expire_leases() == []
    time.sleep(0.3)
    assert [t.id for t in service.expire_leases()] == [task.id]


def test_only_the_holder_completes(tasks: TaskService) -> None:
    task = tasks.create("red", "t")
    tasks.claim("alice")
    with pytest.raises(NotHolder, match="held by alice, not bob"):
        tasks.complete(task.id, "bob", "stolen")
    with pytest.raises(NotHolder):
        tasks.fail(task.id, "bob", "no")
    done = tasks.complete(task.id, "alice", {"files": ["a.py"], "summary": "did it"})
    assert done.state is S.DONE and done.result == {"files": ["a.py"], "summary": "did it"}
    assert done.assignee == "alice" and done.ended_at is not None
    with pytest.raises(NotHolder, match="is done, not claimed"):
        tasks.complete(task.id, "alice", "twice")
    assert tasks.get(task.id).result == {"files": ["a.py"], "summary": "did it"}


def test_a_coordinator_may_finish_for_the_holder(tasks: TaskService) -> None:
    task = tasks.create("red", "t")
    tasks.claim("alice")
    failed = tasks.fail(task.id, "lead", "agent died", coordinator=True)
    assert failed.state is S.FAILED and failed.error == "agent died"
    assert failed.assignee == "alice"
    assert tasks.history(task.id)[-1].message == "failed by lead: agent died"
    with pytest.raises(IllegalTransition, match="is failed and cannot become done"):
        tasks.complete(task.id, "lead", coordinator=True)
    with pytest.raises(UsageError, match="say why"):
        tasks.fail(task.id, "lead", "  ", coordinator=True)


def test_assign_release_and_reassign(tasks: TaskService) -> None:
    task = tasks.create("red", "t")
    assigned = tasks.assign(task.id, "bob", actor="lead", lease_s=120)
    assert assigned.state is S.CLAIMED and assigned.assignee == "bob" and assigned.attempts == 1
    with pytest.raises(IllegalTransition, match="already claimed by bob"):
        tasks.assign(task.id, "carol", actor="lead")
    moved = tasks.assign(task.id, "carol", actor="lead", reassign=True)
    assert moved.assignee == "carol"
    with pytest.raises(NotHolder):
        tasks.heartbeat(task.id, "bob")
    released = tasks.release(task.id, "carol", reason="not my area")
    assert released.state is S.QUEUED and released.assignee is None
    assert [e.message for e in tasks.history(task.id)[1:]] == [
        "assigned to bob by lead (lease 120 s)",
        "reassigned from bob to carol by lead",
        "released by carol: not my area",
    ]


def test_cancel_is_final(tasks: TaskService) -> None:
    task = tasks.create("red", "t")
    cancelled = tasks.cancel(task.id, "lead", reason="not needed")
    assert cancelled.state is S.CANCELLED
    assert tasks.claim("alice") is None
    with pytest.raises(IllegalTransition, match="cancelled and cannot become cancelled"):
        tasks.cancel(task.id, "lead")
    with pytest.raises(IllegalTransition, match="cannot be changed"):
        tasks.update(task.id, title="revived")


def test_update_fields_notes_and_versions(tasks: TaskService) -> None:
    task = tasks.create("red", "t", labels=["a"])
    updated = tasks.update(
        task.id, actor="lead", title="better", labels=["b"], priority=7, note="clarified"
    )
    assert (updated.title, updated.labels, updated.priority) == ("better", ("b",), 7)
    assert updated.version == task.version + 1
    assert [t.id for t in tasks.list(label="b")] == [task.id]
    assert tasks.list(label="a") == []
    events = tasks.history(task.id)
    assert [e.kind for e in events[-2:]] == [EventKind.UPDATED, EventKind.NOTE]
    assert events[-2].detail == {"labels": ["b"], "priority": 7, "title": "better"}
    assert events[-1].message == "clarified"
    with pytest.raises(TaskStale, match=f"at version {updated.version}, not {task.version}"):
        tasks.update(task.id, title="lost update", expect_version=task.version)
    assert tasks.update(task.id, note="only a note").version == updated.version
    with pytest.raises(UsageError, match="nothing to update"):
        tasks.update(task.id)


def test_update_refuses_cycles_and_gating_changes_while_claimed(tasks: TaskService) -> None:
    a = tasks.create("red", "a")
    b = tasks.create("red", "b", depends_on=[a.id])
    c = tasks.create("red", "c", depends_on=[b.id])
    with pytest.raises(UsageError, match=f"would make a cycle: {a.id} -> {c.id} -> {b.id}"):
        tasks.update(a.id, depends_on=[c.id])
    with pytest.raises(UsageError, match="cycle"):
        tasks.update(a.id, depends_on=[a.id])
    with pytest.raises(UsageError, match="unknown dependency 't-zzz'"):
        tasks.update(a.id, depends_on=["t-zzz"])
    assert tasks.get(a.id).depends_on == ()
    tasks.claim("alice")
    with pytest.raises(IllegalTransition, match="requires can change only while it is queued"):
        tasks.update(a.id, requires=["db"])
    tasks.update(a.id, title="renaming is fine while claimed")
    # Removing a dependency lets the task be claimed.
    tasks.update(c.id, depends_on=[])
    got = tasks.claim("bob")
    assert got is not None and got.id == c.id


def test_history_is_append_only_and_in_order(tasks: TaskService, clock: ManualClock) -> None:
    task = tasks.create("red", "t", created_by="lead")
    tasks.claim("alice", lease_s=5)
    clock.advance(10)
    tasks.expire_leases()
    tasks.claim("bob")
    tasks.update(task.id, actor="bob", note="halfway")
    tasks.complete(task.id, "bob", "ok")
    events = tasks.history(task.id)
    assert [e.kind.value for e in events] == [
        "created",
        "claimed",
        "lease_expired",
        "claimed",
        "note",
        "done",
    ]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert [e.actor for e in events] == ["lead", "alice", None, "bob", "bob", "bob"]
    assert events[-1].to_dict()["kind"] == "done"


def test_listeners_hear_each_move_and_their_failures_are_counted(
    sql_store: SqlStore, clock: ManualClock
) -> None:
    heard: list[tuple[str, str]] = []

    def listener(task: Task, kind: EventKind) -> None:
        heard.append((task.title, kind.value))
        if kind is EventKind.DONE:
            raise RuntimeError("bus down")

    service = TaskService(sql_store, clock=clock, on_change=listener)
    before = counters.snapshot().get("tasks.on_change_failed", 0)
    task = service.create("red", "t")
    service.claim("alice")
    done = service.complete(task.id, "alice")
    assert done.state is S.DONE  # the listener's failure did not undo the move
    assert heard == [("t", "created"), ("t", "claimed"), ("t", "done")]
    assert counters.snapshot()["tasks.on_change_failed"] == before + 1


def test_bad_leases_and_claimers_are_refused(tasks: TaskService, sql_store: SqlStore) -> None:
    tasks.create("red", "t")
    with pytest.raises(UsageError, match="lease 0 s is not in"):
        tasks.claim("alice", lease_s=0)
    with pytest.raises(UsageError, match="claimer name"):
        tasks.claim(" ")
    with pytest.raises(UsageError, match="lease"):
        TaskService(sql_store, default_lease_s=-5)
    assert tasks.list(state="claimed") == []


def test_tasks_survive_reopening(tasks_url: str) -> None:
    first = open_store(tasks_url)
    task = TaskService(first).create("red", "kept", requires=["db"], depends_on=[])
    first.close()
    again = open_store(tasks_url)
    service = TaskService(again)
    assert service.get(task.id).requires == ("db",)
    assert service.claim("alice", labels=["db"]) is not None
    again.close()
