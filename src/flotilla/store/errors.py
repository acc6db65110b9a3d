"""Errors raised by the store, placed in the shared tree of flotilla.domain.errors.

IllegalTransition (UsageError)
+-- StaleState           expect_state was given and the stored state differs
OperationFailed
+-- StoreUnavailable     the database cannot be reached or opened
"""

from __future__ import annotations

from flotilla.domain.errors import IllegalTransition, OperationFailed
from flotilla.domain.states import WorkerState


class StaleState(IllegalTransition):
    """Someone else moved the worker first: the caller's view of it is out of date.

    A subclass of IllegalTransition because the requested move was not made,
    but distinct so a caller can tell a lost race from a move that is never legal.
    """

    def __init__(self, worker_id: str, expected: WorkerState, actual: WorkerState) -> None:
        super().__init__(
            f"worker {worker_id} is {actual}, not {expected} as expected "
            "(it changed meanwhile: read it again and retry)"
        )
        self.worker_id = worker_id
        self.expected = expected
        self.actual = actual


class StoreUnavailable(OperationFailed):
    """The database could not be reached, opened or migrated."""
