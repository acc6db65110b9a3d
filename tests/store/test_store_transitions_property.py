"""Property: any sequence of state moves through update_worker gets check_transition's verdicts."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flotilla.domain.errors import IllegalTransition
from flotilla.domain.states import WorkerState, can_transition
from flotilla.domain.worker import Worker
from flotilla.store import StaleState, Store

Factory = Callable[..., Worker]
_names = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    start=st.sampled_from(WorkerState),
    moves=st.lists(
        st.tuples(st.sampled_from(WorkerState), st.none() | st.sampled_from(WorkerState)),
        max_size=12,
    ),
)
def test_moves_match_check_transition(
    store: Store,
    new_worker: Factory,
    start: WorkerState,
    moves: list[tuple[WorkerState, WorkerState | None]],
) -> None:
    worker = store.create_worker(new_worker(f"p{next(_names)}", state=start))
    current, recorded, last_written = start, [], 0
    for step, (target, expected) in enumerate(moves):
        try:
            store.update_worker(worker.id, expect_state=expected, state=target, attempt=step)
            verdict = "moved"
        except StaleState:
            verdict = "stale"
        except IllegalTransition:
            verdict = "illegal"
        if expected is not None and expected != current:
            assert verdict == "stale"
        elif can_transition(current, target):
            assert verdict == "moved"
            recorded.append({"from": current.value, "to": target.value})
            current, last_written = target, step
        else:
            assert verdict == "illegal"
        assert store.get_worker(worker.id).state is current
    assert [row.detail for row in store.history(worker.id)] == recorded
    # Fields given with a refused move were not written either.
    assert store.get_worker(worker.id).attempt == last_written
