"""The workflow tables: rows, compare-and-set stage moves, planned workers, resume, races."""

from __future__ import annotations

import threading

import pytest

from flotilla.domain.errors import IllegalTransition, NotFound, UsageError
from flotilla.domain.workflow import StageState, WorkflowState
from flotilla.store import SqlStore, Store
from flotilla.store.workflow_rows import JUDGE, StageWorkerRow, WorkflowRow
from flotilla.store.workflow_sql import StageStale, WorkflowStore, workflow_store

STAGES = ("build", "review", "ship")


def make(store: Store, workflow_id: str = "0a1b2c3d") -> WorkflowStore:
    wf = workflow_store(store)
    wf.create_workflow(
        WorkflowRow(
            id=workflow_id,
            name="demo",
            project="/repo/a",
            spec={"name": "demo", "stages": []},
            task_prompt="do it",
            options={"merge": True},
        ),
        STAGES,
    )
    return wf


def planned(workflow_id: str, stage: str, attempt: int, count: int = 1) -> list[StageWorkerRow]:
    return [
        StageWorkerRow(
            workflow_id=workflow_id,
            stage=stage,
            attempt=attempt,
            idx=i,
            name=f"wf-{workflow_id}-{stage}-{i}-r{attempt}",
            agent="claude",
        )
        for i in range(count)
    ]


def test_create_and_read_back(store: Store) -> None:
    wf = make(store)
    row = wf.get_workflow("0a1b2c3d")
    assert row.state is WorkflowState.PENDING and row.created_at > 0
    assert row.spec == {"name": "demo", "stages": []} and row.options == {"merge": True}
    assert row.ranking is None and row.merged is None
    stages = wf.stages("0a1b2c3d")
    assert [s.name for s in stages] == list(STAGES)
    assert all(s.state is StageState.PENDING and s.attempt == 0 for s in stages)
    assert [r.id for r in wf.find_workflows("0a1b")] == ["0a1b2c3d"]
    assert wf.find_workflows("0a1b", project="/repo/other") == []
    assert wf.find_workflows("%") == []  # LIKE wildcards are taken literally
    assert [r.id for r in wf.list_workflows(states=[WorkflowState.PENDING])] == ["0a1b2c3d"]
    assert wf.list_workflows(states=[WorkflowState.RUNNING]) == []
    with pytest.raises(UsageError, match="already exists"):
        make(store)
    with pytest.raises(NotFound):
        wf.get_workflow("nope")


def test_a_stage_starts_once_with_its_planned_workers(store: Store) -> None:
    wf = make(store)
    started = wf.start_stage(
        "0a1b2c3d",
        "build",
        expect_state=StageState.PENDING,
        expect_attempt=0,
        planned=planned("0a1b2c3d", "build", 1, count=2),
        started_at=1.0,
    )
    assert started.state is StageState.RUNNING and started.attempt == 1
    with pytest.raises(StageStale):
        wf.start_stage(
            "0a1b2c3d",
            "build",
            expect_state=StageState.PENDING,
            expect_attempt=0,
            planned=planned("0a1b2c3d", "build", 1),
        )
    rows = wf.stage_workers("0a1b2c3d", "build")
    assert [(r.attempt, r.idx, r.worker_id) for r in rows] == [(1, 0, None), (1, 1, None)]
    # A retry: RUNNING (attempt 1) -> RUNNING (attempt 2) with the next attempt's workers.
    again = wf.start_stage(
        "0a1b2c3d",
        "build",
        expect_state=StageState.RUNNING,
        expect_attempt=1,
        planned=planned("0a1b2c3d", "build", 2),
        ranking=None,
    )
    assert again.attempt == 2 and again.state is StageState.RUNNING
    assert len(wf.stage_workers("0a1b2c3d", "build")) == 3
    with pytest.raises(UsageError, match="is not of build #3"):
        wf.start_stage(
            "0a1b2c3d",
            "build",
            expect_state=StageState.RUNNING,
            expect_attempt=2,
            planned=planned("0a1b2c3d", "review", 3),
        )
    assert wf.get_stage("0a1b2c3d", "build").attempt == 2  # the refused start changed nothing


def test_concurrent_starts_one_wins(store: Store) -> None:
    wf = make(store)
    wins: list[int] = []
    losses: list[int] = []
    barrier = threading.Barrier(6)

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            wf.start_stage(
                "0a1b2c3d",
                "review",
                expect_state=StageState.PENDING,
                expect_attempt=0,
                planned=planned("0a1b2c3d", "review", 1),
            )
            wins.append(n)
        except StageStale:
            losses.append(n)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1 and len(losses) == 5
    assert len(wf.stage_workers("0a1b2c3d", "review")) == 1


def test_stage_and_workflow_moves_are_checked(store: Store) -> None:
    wf = make(store)
    wf.update_stage("0a1b2c3d", "ship", expect_state=StageState.PENDING, state=StageState.SKIPPED)
    with pytest.raises(IllegalTransition):
        wf.update_stage("0a1b2c3d", "ship", state=StageState.SUCCEEDED)
    with pytest.raises(StageStale):
        wf.update_stage("0a1b2c3d", "ship", expect_state=StageState.PENDING, error="x")
    with pytest.raises(UsageError, match="cannot update StageRow field"):
        wf.update_stage("0a1b2c3d", "ship", colour="red")
    wf.update_stage("0a1b2c3d", "ship", facts={"summary": "s"}, ranking={"rows": []})
    stored = wf.get_stage("0a1b2c3d", "ship")
    assert stored.facts == {"summary": "s"} and stored.ranking == {"rows": []}
    running = wf.update_workflow(
        "0a1b2c3d", expect_state=WorkflowState.PENDING, state=WorkflowState.RUNNING
    )
    assert running.state is WorkflowState.RUNNING
    with pytest.raises(IllegalTransition, match="not pending"):
        wf.update_workflow("0a1b2c3d", expect_state=WorkflowState.PENDING, error="x")
    wf.update_workflow("0a1b2c3d", state=WorkflowState.SUCCEEDED, winner="w", merged=[{"a": 1}])
    with pytest.raises(IllegalTransition):
        wf.update_workflow("0a1b2c3d", state=WorkflowState.RUNNING)
    assert wf.get_workflow("0a1b2c3d").merged == [{"a": 1}]
    with pytest.raises(UsageError, match="cannot update WorkflowRow field"):
        wf.update_workflow("0a1b2c3d", project="/elsewhere")


def test_resume_moves_stages_back_and_the_workflow_on_in_one_transaction(store: Store) -> None:
    wf = make(store)
    wf.update_workflow("0a1b2c3d", state=WorkflowState.RUNNING)
    wf.start_stage(
        "0a1b2c3d",
        "build",
        expect_state=StageState.PENDING,
        expect_attempt=0,
        planned=planned("0a1b2c3d", "build", 1),
    )
    wf.update_stage("0a1b2c3d", "build", state=StageState.FAILED, error="boom", outcome="error")
    wf.update_stage("0a1b2c3d", "review", state=StageState.SKIPPED)
    wf.update_workflow("0a1b2c3d", state=WorkflowState.FAILED, error="stage 'build' failed")
    with pytest.raises(IllegalTransition):  # the expectation is checked: nothing moves
        wf.resume("0a1b2c3d", ["build", "review"], expect_state=WorkflowState.CANCELLED)
    assert wf.get_stage("0a1b2c3d", "build").state is StageState.FAILED
    row = wf.resume("0a1b2c3d", ["build", "review"], expect_state=WorkflowState.FAILED, error=None)
    assert row.state is WorkflowState.RUNNING and row.error is None
    build = wf.get_stage("0a1b2c3d", "build")
    assert build.state is StageState.PENDING and build.attempt == 1 and build.retry_base == 1
    assert build.error is None and build.outcome is None
    assert wf.get_stage("0a1b2c3d", "review").state is StageState.PENDING


def test_planned_workers_record_their_end(store: Store) -> None:
    wf = make(store)
    wf.start_stage(
        "0a1b2c3d",
        "build",
        expect_state=StageState.PENDING,
        expect_attempt=0,
        planned=planned("0a1b2c3d", "build", 1),
    )
    judge = StageWorkerRow("0a1b2c3d", "build", 1, 5, "wf-0a1b2c3d-build-judge", "codex", JUDGE)
    first = wf.add_stage_worker(judge)
    assert wf.add_stage_worker(judge) == first  # planning it again finds the same row
    ended = wf.update_stage_worker(
        first, worker_id="w1", state="succeeded", outcome="success", result={"summary": "x"}
    )
    assert ended.ended and ended.result == {"summary": "x"} and ended.role == JUDGE
    assert [r.name for r in wf.stage_workers("0a1b2c3d")][-1] == "wf-0a1b2c3d-build-judge"
    with pytest.raises(UsageError):
        wf.update_stage_worker(first, idx=9)


def test_workflow_store_needs_the_sql_store(store: Store) -> None:
    assert isinstance(store, SqlStore)
    assert isinstance(workflow_store(store), WorkflowStore)
    with pytest.raises(Exception, match="SQL store"):
        workflow_store(object())  # type: ignore[arg-type]
