"""The one interface every store backend offers, and the rows it returns besides Worker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker

ACTIVE_STATES = frozenset(s for s in WorkerState if s.is_active)


class PromptStatus(StrEnum):
    PENDING = "pending"  # queued for the worker
    DELIVERING = "delivering"  # taken by one deliverer; no one else will take it
    DELIVERED = "delivered"
    FAILED = "failed"


_P = PromptStatus
# A prompt being delivered may go back to pending (delivery to retry) but a
# delivered one never moves again, so it cannot be delivered twice.
PROMPT_MOVES: dict[PromptStatus, frozenset[PromptStatus]] = {
    _P.PENDING: frozenset({_P.DELIVERING, _P.FAILED}),
    _P.DELIVERING: frozenset({_P.DELIVERED, _P.FAILED, _P.PENDING}),
    _P.DELIVERED: frozenset(),
    _P.FAILED: frozenset({_P.PENDING}),
}


@dataclass(frozen=True)
class PromptRow:
    """A follow-up prompt queued for a worker."""

    id: int
    worker_id: str
    text: str
    status: PromptStatus
    created_at: float
    delivered_at: float | None
    attempt: int  # how many times it was taken for delivery


@dataclass(frozen=True)
class HistoryRow:
    """One entry of a worker's history (a state change, a restart, a note)."""

    id: int
    worker_id: str
    at: float
    kind: str
    detail: dict[str, Any]


class Store(Protocol):
    """Persistence of workers, their prompts and history. The store is the truth.

    Every method is one transaction. Errors: NotFound for an unknown id,
    UsageError for bad input, IllegalTransition/StaleState for refused state
    moves, StoreUnavailable when the database cannot be reached.
    """

    @property
    def url(self) -> str:
        """The database URL with any password replaced by ***."""
        ...

    def create_worker(self, worker: Worker) -> Worker: ...
    def get_worker(self, worker_id: str) -> Worker: ...
    def find_worker(self, project: str, name: str) -> Worker | None: ...
    def cached_worker(self, project: str, name: str) -> Worker | None: ...
    def list_workers(
        self,
        project: str | None = None,
        states: Iterable[WorkerState | str] | None = None,
        batch: str | None = None,
        names_glob: str | None = None,
    ) -> list[Worker]: ...
    def update_worker(
        self, worker_id: str, *, expect_state: WorkerState | None = None, **fields: Any
    ) -> Worker: ...
    def delete_worker(self, worker_id: str) -> None: ...
    def count_active(self, project: str) -> int: ...

    def add_prompt(self, worker_id: str, text: str) -> int: ...
    def pending_prompts(self, worker_id: str) -> list[PromptRow]: ...
    def take_next_prompt(self, worker_id: str) -> PromptRow | None: ...
    def mark_prompt(self, prompt_id: int, status: PromptStatus | str) -> PromptRow: ...

    def add_history(
        self, worker_id: str, kind: str, detail: dict[str, Any] | None = None
    ) -> int: ...
    def history(self, worker_id: str) -> list[HistoryRow]: ...

    def ping(self) -> bool: ...
    def close(self) -> None: ...
