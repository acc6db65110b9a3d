"""A follow-up prompt that crosses the end of a turn: the worker is requeued once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flotilla import counters
from flotilla.domain.states import Outcome, WorkerState
from flotilla.domain.worker import Worker
from flotilla.orchestrator.followups import requeue_for_prompt
from flotilla.orchestrator.service import FleetService
from flotilla.store import Store


def _ended(store: Store, new_worker: Callable[..., Worker], name: str) -> str:
    worker = store.create_worker(new_worker(name, worktree="/tmp/wt"))
    for state in (WorkerState.STARTING, WorkerState.RUNNING):
        store.update_worker(worker.id, state=state)
    store.update_worker(
        worker.id, state=WorkerState.SUCCEEDED, outcome=Outcome.SUCCESS, ended_at=1.0
    )
    return worker.id


def test_only_the_first_side_to_see_the_other_requeues(
    store: Store, new_worker: Callable[..., Worker]
) -> None:
    worker_id = _ended(store, new_worker, "crossed")
    store.add_prompt(worker_id, "and then this")
    seen_by_both = store.get_worker(worker_id)  # each side read it ended
    before = counters.snapshot().get("followup.requeue_raced", 0)
    assert requeue_for_prompt(store, seen_by_both) is True
    assert requeue_for_prompt(store, seen_by_both) is False  # the other side: too late
    after = store.get_worker(worker_id)
    assert after.state is WorkerState.QUEUED and after.settings["next_turn"] == "prompt"
    assert counters.snapshot()["followup.requeue_raced"] == before + 1


def test_a_prompt_sent_with_a_stale_running_view_still_gets_its_turn(
    store: Store, new_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    worker = store.create_worker(new_worker("busy", worktree="/tmp/wt"))
    for state in (WorkerState.STARTING, WorkerState.RUNNING):
        worker = store.update_worker(worker.id, state=state)
    # The turn ends after the caller looked the worker up, before its prompt is stored.
    store.update_worker(
        worker.id, state=WorkerState.SUCCEEDED, outcome=Outcome.SUCCESS, ended_at=1.0
    )
    service = FleetService(store, tmp_path, tmux_socket=f"flotilla-test-{tmp_path.name}")
    reply = service.prompt(worker, "and then this")
    assert reply["status"] == "queued"
    queued = store.get_worker(worker.id)
    assert queued.state is WorkerState.QUEUED and queued.settings["next_turn"] == "prompt"
    assert [p.text for p in store.pending_prompts(worker.id)] == ["and then this"]
