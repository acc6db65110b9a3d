"""Races with real threads and processes, on SQLite and PostgreSQL: no task is claimed
twice, every task is claimed, dependencies hold under load, and a lease that expires
while its holder completes ends one way only."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tasks_support import ManualClock, assert_dependency_counts_hold

from flotilla.domain.tasks import EventKind, NotHolder, TaskState
from flotilla.orchestrator.tasks import TaskService
from flotilla.store import SqlStore

CLAIMERS = 50
CHILD = Path(__file__).with_name("task_claim_child.py")


def make_tasks(service: TaskService, count: int, team: str = "race") -> list[str]:
    return [service.create(team, f"task {i}", priority=i % 4).id for i in range(count)]


def test_fifty_threads_never_claim_a_task_twice(sql_store: SqlStore) -> None:
    service = TaskService(sql_store)
    made = make_tasks(service, 400)
    barrier = threading.Barrier(CLAIMERS)

    def claimer(index: int) -> list[str]:
        barrier.wait()
        got: list[str] = []
        for _ in range(len(made) + 1):
            task = service.claim(f"agent-{index}", team="race")
            if task is None:
                break
            assert task.assignee == f"agent-{index}"
            got.append(task.id)
        return got

    with ThreadPoolExecutor(CLAIMERS) as pool:
        per_claimer = list(pool.map(claimer, range(CLAIMERS)))
    claimed = [task_id for got in per_claimer for task_id in got]
    assert Counter(claimed).most_common(1)[0][1] == 1  # nobody got a task twice
    assert sorted(claimed) == sorted(made)  # and every task was claimed
    assert sum(1 for got in per_claimer if got) > 1  # the claimers really competed
    for task in service.list(team="race"):
        assert task.state is TaskState.CLAIMED and task.attempts == 1
    holder = {task_id: f"agent-{i}" for i, got in enumerate(per_claimer) for task_id in got}
    for task_id in made[:40]:
        events = service.history(task_id)
        assert [e.kind for e in events] == [EventKind.CREATED, EventKind.CLAIMED]
        assert events[1].actor == holder[task_id]


def test_fifty_threads_work_a_dependency_graph(sql_store: SqlStore) -> None:
    """Claimers claim and complete; a task is claimed only after its dependencies are done."""
    service = TaskService(sql_store)
    layers: list[list[str]] = []
    for depth in range(4):
        below = layers[-1] if layers else []
        layers.append(
            [
                service.create(
                    "race", f"d{depth}-{i}", depends_on=below[i % len(below) :][:2] if below else []
                ).id
                for i in range(30)
            ]
        )
    everything = [task_id for layer in layers for task_id in layer]
    barrier = threading.Barrier(CLAIMERS)
    done = threading.Event()

    def worker(index: int) -> list[str]:
        barrier.wait()
        got: list[str] = []
        for _ in range(5_000):  # bounded; far more than needed
            task = service.claim(f"w{index}", team="race")
            if task is None:
                if done.is_set():
                    break
                time.sleep(0.005)
                continue
            got.append(task.id)
            service.complete(task.id, f"w{index}", {"by": index})
            if len(service.list(team="race", state="done")) == len(everything):
                done.set()
        return got

    with ThreadPoolExecutor(CLAIMERS) as pool:
        per_worker = list(pool.map(worker, range(CLAIMERS)))
    claimed = [task_id for got in per_worker for task_id in got]
    assert sorted(claimed) == sorted(everything)
    event_ids = {
        (task_id, event.kind): event.id
        for task_id in everything
        for event in service.history(task_id)
    }
    for task in service.list(team="race"):
        assert task.state is TaskState.DONE
        for dep in task.depends_on:  # the dependency was done before this one was claimed
            assert event_ids[(dep, EventKind.DONE)] < event_ids[(task.id, EventKind.CLAIMED)]
    assert_dependency_counts_hold(sql_store)


def test_a_dependant_made_while_its_dependency_finishes_is_counted_right(
    sql_store: SqlStore,
) -> None:
    """Creating a task on a dependency that is being completed at the same moment: the
    new task's count of open dependencies is right whichever commits first."""
    service = TaskService(sql_store)
    dependants = []
    for round_ in range(25):
        base = service.create("race", f"base {round_}")
        service.assign(base.id, "alice")
        barrier = threading.Barrier(2)

        def finish(base_id: str = base.id, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            service.complete(base_id, "alice")

        def depend(
            base_id: str = base.id, barrier: threading.Barrier = barrier, n: int = round_
        ) -> str:
            barrier.wait()
            return service.create("race", f"after {n}", depends_on=[base_id]).id

        with ThreadPoolExecutor(2) as pool:
            done = pool.submit(finish)
            made = pool.submit(depend)
            done.result()
            dependants.append(made.result())
    assert_dependency_counts_hold(sql_store)
    claimed = {service.claim("bob", team="race") for _ in dependants}
    assert {task.id for task in claimed if task} == set(dependants)  # none left waiting


def test_lease_expiry_racing_completion_ends_one_way(sql_store: SqlStore) -> None:
    clock = ManualClock()
    service = TaskService(sql_store, clock=clock)
    made = make_tasks(service, 60)
    holders = {}
    for i in range(len(made)):
        task = service.claim(f"h{i}", lease_s=10)
        assert task is not None
        holders[task.id] = f"h{i}"
    clock.advance(11)  # every lease has run out; the holders complete anyway
    barrier = threading.Barrier(len(made) + 3)

    def complete(task_id: str) -> bool:
        barrier.wait()
        try:
            service.complete(task_id, holders[task_id], "late but done")
        except NotHolder:
            return False
        return True

    def sweep(_: int) -> int:
        barrier.wait()
        return len(service.expire_leases())

    with ThreadPoolExecutor(len(made) + 3) as pool:
        sweeps = [pool.submit(sweep, i) for i in range(3)]
        completed = dict(zip(made, pool.map(complete, made), strict=True))
        expired = sum(s.result() for s in sweeps)
    assert expired + sum(completed.values()) == len(made)
    for task_id, won in completed.items():
        task = service.get(task_id)
        kinds = [e.kind for e in service.history(task_id)]
        if won:
            assert task.state is TaskState.DONE and EventKind.LEASE_EXPIRED not in kinds
        else:
            assert task.state is TaskState.QUEUED and kinds[-1] is EventKind.LEASE_EXPIRED
            assert EventKind.DONE not in kinds


@pytest.mark.slow
def test_claimer_processes_never_claim_a_task_twice(sql_store: SqlStore, tasks_url: str) -> None:
    service = TaskService(sql_store)
    made = make_tasks(service, 300)
    start_at = str(time.time() + 3.0)
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), tasks_url, start_at, f"proc-{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    claimed: list[str] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        claimed.extend(json.loads(out)["claimed"])
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert sorted(claimed) == sorted(made)
