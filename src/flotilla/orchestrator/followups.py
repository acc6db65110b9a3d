"""A follow-up prompt and the end of a turn can cross: the prompt is stored while the
supervisor, having found none pending, is ending the turn. Each side looks again after
its own write, and whichever sees the other's requeues the worker, exactly once (a
compare-and-set on the state it saw)."""

from __future__ import annotations

from flotilla.counters import count
from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker
from flotilla.store.base import Store
from flotilla.store.errors import StaleState


def requeue_for_prompt(store: Store, worker: Worker) -> bool:
    """Queue the ended `worker` again so its next turn takes the pending prompt; False
    when someone moved it first (the other side of the race requeued it)."""
    settings = dict(worker.settings)
    settings["next_turn"] = "prompt"
    try:
        store.update_worker(
            worker.id, expect_state=worker.state, state=WorkerState.QUEUED, settings=settings
        )
    except StaleState:
        count("followup.requeue_raced")
        return False
    return True
