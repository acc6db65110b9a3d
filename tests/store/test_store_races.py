"""Races: compare-and-set, prompt claiming and concurrent opening, by threads and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from flotilla.domain.errors import IllegalTransition
from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker
from flotilla.store import StaleState, Store, open_store
from flotilla.store.migrate import current_revision, head_revision
from flotilla.store.sql import SqlStore

S = WorkerState
Factory = Callable[..., Worker]
CHILD = Path(__file__).with_name("store_race_child.py")


def run_children(args: list[list[str]], timeout: float = 60) -> list[dict[str, Any]]:
    """Start one child process per argument list at once and return what each printed."""
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in args
    ]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=timeout)
        assert child.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


def test_compare_and_set_between_threads(store: Store, new_worker: Factory) -> None:
    """Two threads move each running worker to different ends: exactly one wins."""
    workers = [store.create_worker(new_worker(f"w{i}", state=S.RUNNING)) for i in range(15)]
    targets = (S.SUCCEEDED, S.FAILED)
    for worker in workers:
        barrier = threading.Barrier(2)

        def attempt(
            target: WorkerState, worker_id: str = worker.id, barrier: threading.Barrier = barrier
        ) -> WorkerState | None:
            barrier.wait()
            try:
                store.update_worker(worker_id, expect_state=S.RUNNING, state=target)
            except StaleState:
                return None
            return target

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(attempt, targets))
        winners = [t for t in outcomes if t is not None]
        assert len(winners) == 1
        assert store.get_worker(worker.id).state is winners[0]
        assert len(store.history(worker.id)) == 1


def test_same_move_without_expect_state_wins_once(store: Store, new_worker: Factory) -> None:
    """Without expect_state the stored state still decides: the second move is illegal."""
    worker = store.create_worker(new_worker("w", state=S.RUNNING))
    barrier = threading.Barrier(4)

    def attempt(_: int) -> bool:
        barrier.wait()
        try:
            store.update_worker(worker.id, state=S.WAITING)
        except IllegalTransition:
            return False
        return True

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(attempt, range(4))) == [False, False, False, True]
    assert [r.detail for r in store.history(worker.id)] == [{"from": "running", "to": "waiting"}]


@pytest.mark.slow
def test_compare_and_set_between_processes(
    store: Store, store_url: str, new_worker: Factory
) -> None:
    ids = [store.create_worker(new_worker(f"w{i}", state=S.RUNNING)).id for i in range(20)]
    start_at = str(time.time() + 2.0)
    first, second = run_children(
        [
            ["cas", store_url, start_at, "succeeded", *ids],
            ["cas", store_url, start_at, "failed", *ids],
        ]
    )
    assert sorted(first["won"] + second["won"]) == sorted(ids)
    assert sorted(first["lost"] + second["lost"]) == sorted(ids)
    for worker_id in first["won"]:
        assert store.get_worker(worker_id).state is S.SUCCEEDED
    for worker_id in second["won"]:
        assert store.get_worker(worker_id).state is S.FAILED
    assert all(len(store.history(worker_id)) == 1 for worker_id in ids)


def test_each_prompt_is_taken_once_by_ten_threads(store: Store, new_worker: Factory) -> None:
    worker = store.create_worker(new_worker("w"))
    added = [store.add_prompt(worker.id, f"prompt {i}") for i in range(60)]
    barrier = threading.Barrier(10)

    def drain(_: int) -> list[int]:
        barrier.wait()
        taken = []
        while (prompt := store.take_next_prompt(worker.id)) is not None:
            taken.append(prompt.id)
        return taken

    with ThreadPoolExecutor(10) as pool:
        per_thread = list(pool.map(drain, range(10)))
    taken = [prompt_id for ids in per_thread for prompt_id in ids]
    assert Counter(taken).most_common(1)[0][1] == 1  # nobody got a prompt twice
    assert sorted(taken) == added
    assert all(ids == sorted(ids) for ids in per_thread)  # each thread took oldest first
    assert store.pending_prompts(worker.id) == []


@pytest.mark.slow
def test_concurrent_first_open_by_processes(store_url: str) -> None:
    """Several processes open an empty database at once: one migrates, all succeed."""
    start_at = str(time.time() + 2.0)
    outputs = run_children([["open", store_url, start_at] for _ in range(3)])
    assert outputs == [{"workers": 0}] * 3
    store = open_store(store_url)
    assert isinstance(store, SqlStore)
    assert current_revision(store.engine) == head_revision()
    store.close()


@pytest.mark.parametrize("threads", [4])
def test_concurrent_creates_get_distinct_numbers(
    store: Store, new_worker: Factory, threads: int
) -> None:
    barrier = threading.Barrier(threads)

    def create(index: int) -> list[int]:
        barrier.wait()
        return [store.create_worker(new_worker(f"t{index}-{n}")).seq for n in range(10)]

    with ThreadPoolExecutor(threads) as pool:
        seqs = [seq for batch in pool.map(create, range(threads)) for seq in batch]
    assert sorted(seqs) == list(range(1, 10 * threads + 1))
