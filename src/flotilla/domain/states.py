"""Worker lifecycle states and the legal moves between them."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from flotilla.domain.errors import IllegalTransition, UsageError


class WorkerState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting"  # the agent needs input or a permission
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        """A process exists (or is being made) for this worker."""
        return self in (WorkerState.STARTING, WorkerState.RUNNING, WorkerState.WAITING)


TERMINAL_STATES = frozenset({WorkerState.SUCCEEDED, WorkerState.FAILED, WorkerState.CANCELLED})

_S = WorkerState
# A running worker may go back to QUEUED (rate-limit retry waiting for its backoff)
# or STARTING (stale restart). A finished one may start again for a follow-up prompt.
# STARTING -> QUEUED: the daemon died before the agent's process started; start it again.
LEGAL_TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    _S.QUEUED: frozenset({_S.STARTING, _S.FAILED, _S.CANCELLED}),
    _S.STARTING: frozenset(
        {_S.QUEUED, _S.RUNNING, _S.WAITING, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED}
    ),
    _S.RUNNING: frozenset(
        {_S.WAITING, _S.QUEUED, _S.STARTING, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED}
    ),
    _S.WAITING: frozenset(
        {_S.RUNNING, _S.QUEUED, _S.STARTING, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED}
    ),
    _S.SUCCEEDED: frozenset({_S.QUEUED, _S.STARTING}),
    _S.FAILED: frozenset({_S.QUEUED, _S.STARTING}),
    _S.CANCELLED: frozenset(),
}


def can_transition(current: WorkerState, target: WorkerState) -> bool:
    return target in LEGAL_TRANSITIONS[current]


def check_transition(current: WorkerState, target: WorkerState) -> WorkerState:
    """Return `target` if the move is legal, else raise IllegalTransition."""
    if not can_transition(current, target):
        raise IllegalTransition(f"a {current} worker cannot become {target}")
    return target


class Outcome(StrEnum):
    """What a finished run amounted to, recorded on its result."""

    SUCCESS = "success"
    NO_CHANGES = "no_changes"  # exited 0 but changed nothing in its worktree
    BLOCKED = "blocked"  # the agent said it could not do it
    TESTS_FAILED = "tests_failed"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    TIMED_OUT = "timed_out"
    STALE = "stale"
    ERROR = "error"  # non-zero exit or an error event
    CANCELLED = "cancelled"

    @property
    def final_state(self) -> WorkerState:
        if self in (Outcome.SUCCESS, Outcome.NO_CHANGES):
            return WorkerState.SUCCEEDED
        if self is Outcome.CANCELLED:
            return WorkerState.CANCELLED
        return WorkerState.FAILED


_State = TypeVar("_State", bound=StrEnum)


def parse_states(kind: type[_State], text: str | None) -> list[_State] | None:
    """A comma-separated filter of states (API and CLI); UsageError naming the known ones."""
    if not text:
        return None
    try:
        return [kind(part.strip()) for part in text.split(",")]
    except ValueError:
        known = ", ".join(s.value for s in kind)
        raise UsageError(
            f"unknown state in {text!r}: use one or more of {known}, comma-separated"
        ) from None
