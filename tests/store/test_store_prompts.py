"""Follow-up prompts and worker history — on each backend."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flotilla.domain.errors import IllegalTransition, NotFound, UsageError
from flotilla.domain.worker import Worker
from flotilla.store import PromptStatus, Store

P = PromptStatus
Factory = Callable[..., Worker]


def test_prompts_queue_in_order(store: Store, new_worker: Factory) -> None:
    worker = store.create_worker(new_worker("a"))
    other = store.create_worker(new_worker("b"))
    first = store.add_prompt(worker.id, "first")
    second = store.add_prompt(worker.id, "second")
    store.add_prompt(other.id, "not yours")
    pending = store.pending_prompts(worker.id)
    assert [(p.id, p.text, p.status, p.attempt) for p in pending] == [
        (first, "first", P.PENDING, 0),
        (second, "second", P.PENDING, 0),
    ]
    assert pending[0].worker_id == worker.id
    assert pending[0].delivered_at is None
    assert pending[0].created_at <= pending[1].created_at

    taken = store.take_next_prompt(worker.id)
    assert taken is not None
    assert (taken.id, taken.status, taken.attempt) == (first, P.DELIVERING, 1)
    assert [p.id for p in store.pending_prompts(worker.id)] == [second]

    delivered = store.mark_prompt(first, "delivered")
    assert delivered.status is P.DELIVERED
    assert delivered.delivered_at is not None

    taken = store.take_next_prompt(worker.id)
    assert taken is not None and taken.id == second
    assert store.take_next_prompt(worker.id) is None
    assert store.take_next_prompt("no-such-worker") is None


def test_a_failed_delivery_can_be_retried(store: Store, new_worker: Factory) -> None:
    worker = store.create_worker(new_worker("a"))
    prompt_id = store.add_prompt(worker.id, "again")
    store.take_next_prompt(worker.id)
    assert store.mark_prompt(prompt_id, P.PENDING).status is P.PENDING
    retaken = store.take_next_prompt(worker.id)
    assert retaken is not None and retaken.attempt == 2
    assert store.mark_prompt(prompt_id, P.FAILED).status is P.FAILED
    assert store.mark_prompt(prompt_id, P.PENDING).status is P.PENDING


def test_a_delivered_prompt_never_moves_again(store: Store, new_worker: Factory) -> None:
    worker = store.create_worker(new_worker("a"))
    prompt_id = store.add_prompt(worker.id, "once")
    with pytest.raises(IllegalTransition, match="a pending prompt cannot become delivered"):
        store.mark_prompt(prompt_id, P.DELIVERED)  # not taken first
    store.take_next_prompt(worker.id)
    store.mark_prompt(prompt_id, P.DELIVERED)
    for status in P:
        with pytest.raises(IllegalTransition, match="a delivered prompt cannot become"):
            store.mark_prompt(prompt_id, status)
    assert store.take_next_prompt(worker.id) is None


def test_prompt_errors(store: Store, new_worker: Factory) -> None:
    worker = store.create_worker(new_worker("a"))
    prompt_id = store.add_prompt(worker.id, "x")
    with pytest.raises(UsageError, match="prompt status 'sent' is not one of pending"):
        store.mark_prompt(prompt_id, "sent")
    with pytest.raises(NotFound, match="no follow-up prompt with id 999999"):
        store.mark_prompt(999_999, P.FAILED)
    with pytest.raises(NotFound, match="no worker with id 'ghost'"):
        store.add_prompt("ghost", "x")
    assert store.pending_prompts("ghost") == []


def test_history(store: Store, new_worker: Factory) -> None:
    worker = store.create_worker(new_worker("a"))
    one = store.add_history(worker.id, "restart", {"reason": "stale", "n": 1})
    two = store.add_history(worker.id, "note")
    assert one < two
    rows = store.history(worker.id)
    assert [(r.id, r.worker_id, r.kind, r.detail) for r in rows] == [
        (one, worker.id, "restart", {"reason": "stale", "n": 1}),
        (two, worker.id, "note", {}),
    ]
    with pytest.raises(NotFound):
        store.add_history("ghost", "note")
    assert store.history("ghost") == []
