"""Workflow and stage definitions, their lifecycle states and the legal moves between them.

A workflow is a DAG of stages; a stage is one or more workers (fan-out) running
the same prompt template. These types are what a workflow file parses into and
what the engine stores; they hold no runtime facts (those live in the store).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from flotilla.domain.errors import IllegalTransition, UsageError

WorktreeMode = Literal["new", "inherit"]
WORKTREE_MODES: tuple[WorktreeMode, ...] = ("new", "inherit")

MAX_STAGE_NAME_LENGTH = 40
# Letters, digits, '_' and '-': a stage name is used inside `when` expressions,
# template variables ({stages.NAME.summary}) and worker names, so no dots.
_STAGE_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$")
RESERVED_STAGE_NAMES = frozenset({"and", "or", "not"})


class WorkflowInvalid(UsageError):
    """A workflow definition has problems; `problems` lists every one, one line each."""

    def __init__(self, workflow: str, problems: list[str]) -> None:
        self.workflow = workflow
        self.problems = list(problems)
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"workflow {workflow!r} has {count} {noun}: " + "; ".join(problems))


class StageState(StrEnum):
    PENDING = "pending"  # waiting for its dependencies
    READY = "ready"  # inputs are ready; waiting for a concurrency slot
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # its `when` said no, or a dependency did not succeed
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STAGE_STATES


TERMINAL_STAGE_STATES = frozenset(
    {StageState.SUCCEEDED, StageState.FAILED, StageState.SKIPPED, StageState.CANCELLED}
)

_S = StageState
# READY -> PENDING: the budget was reached before the stage got a slot.
# RUNNING -> READY: a retry waits for a slot again.
# FAILED/SKIPPED/CANCELLED -> PENDING: `fleet workflow resume` decides them again.
# SUCCEEDED is final: no stage runs twice.
STAGE_TRANSITIONS: dict[StageState, frozenset[StageState]] = {
    _S.PENDING: frozenset({_S.READY, _S.RUNNING, _S.SKIPPED, _S.CANCELLED}),
    _S.READY: frozenset({_S.RUNNING, _S.PENDING, _S.SKIPPED, _S.CANCELLED}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELLED, _S.READY}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset({_S.PENDING}),
    _S.SKIPPED: frozenset({_S.PENDING}),
    _S.CANCELLED: frozenset({_S.PENDING}),
}


def can_stage_transition(current: StageState, target: StageState) -> bool:
    return target in STAGE_TRANSITIONS[current]


def check_stage_transition(current: StageState, target: StageState) -> StageState:
    """Return `target` if the move is legal, else raise IllegalTransition."""
    if not can_stage_transition(current, target):
        raise IllegalTransition(f"a {current} stage cannot become {target}")
    return target


class WorkflowState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (WorkflowState.SUCCEEDED, WorkflowState.FAILED, WorkflowState.CANCELLED)


_W = WorkflowState
# FAILED/CANCELLED -> RUNNING: `fleet workflow resume` after the user fixed the cause.
WORKFLOW_TRANSITIONS: dict[WorkflowState, frozenset[WorkflowState]] = {
    _W.PENDING: frozenset({_W.RUNNING, _W.FAILED, _W.CANCELLED}),
    _W.RUNNING: frozenset({_W.SUCCEEDED, _W.FAILED, _W.CANCELLED}),
    _W.SUCCEEDED: frozenset(),
    _W.FAILED: frozenset({_W.RUNNING}),
    _W.CANCELLED: frozenset({_W.RUNNING}),
}


def can_workflow_transition(current: WorkflowState, target: WorkflowState) -> bool:
    return target in WORKFLOW_TRANSITIONS[current]


def check_workflow_transition(current: WorkflowState, target: WorkflowState) -> WorkflowState:
    """Return `target` if the move is legal, else raise IllegalTransition."""
    if not can_workflow_transition(current, target):
        raise IllegalTransition(f"a {current} workflow cannot become {target}")
    return target


def stage_name_problem(name: str) -> str | None:
    """Why `name` cannot be a stage name, or None if it can."""
    if not name:
        return "a stage has an empty name: give each stage a name like 'implement'"
    if len(name) > MAX_STAGE_NAME_LENGTH:
        return f"stage name {name!r} is longer than {MAX_STAGE_NAME_LENGTH} characters"
    if name in RESERVED_STAGE_NAMES:
        return f"stage name {name!r} is a reserved word of `when` conditions: choose another"
    if not _STAGE_NAME.match(name):
        return (
            f"stage name {name!r} is not valid: use letters, digits, '_' and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return None


@dataclass(frozen=True)
class WorkerPlan:
    """One worker of a stage: which agent kind it runs and which part it takes."""

    index: int  # 0-based within the stage
    agent: str
    part: str | None = None


@dataclass(frozen=True)
class StageSpec:
    """One stage of a workflow: one prompt template run by one or more workers.

    Fan-out: without `parts`, each kind in `agent_kinds` runs `count` workers
    (total = count x kinds); with `parts`, one worker per part (agents cycle)
    and the part is the `{part}` template variable.
    """

    name: str
    agent: str
    prompt: str
    model: str | None = None
    extra_flags: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()  # several kinds (compete); empty: just `agent`
    depends_on: tuple[str, ...] = ()
    worktree: WorktreeMode = "new"
    inherit_from: str | None = None  # an upstream stage whose worktree this one continues
    base_ref: str | None = None  # for worktree "new"; None: the engine's default
    count: int = 1
    parts: tuple[str, ...] = ()
    timeout_s: float | None = None
    retries: int = 0
    when: str | None = None  # a condition on upstream outcomes (flotilla.domain.conditions)
    gate: str | None = None  # a shell command that must pass in the stage's worktree
    rank: bool = False  # compete: rank this stage's workers by facts, keep the winner
    judge: str | None = None  # rank stages: the agent kind asked to break a tie
    picks: str | None = None  # judge stages: the upstream stage whose winner this one picks
    # The stage's agents run in tmux sessions a person attaches to (`fleet attach NAME`),
    # e.g. a human-in-the-loop review; the stage ends when they exit. Judges stay headless.
    interactive: bool = False

    @property
    def agent_kinds(self) -> tuple[str, ...]:
        return self.agents or (self.agent,)

    def workers(self) -> tuple[WorkerPlan, ...]:
        """The workers this stage fans out to, in a stable order."""
        kinds = self.agent_kinds
        if self.parts:
            return tuple(
                WorkerPlan(index, kinds[index % len(kinds)], part)
                for index, part in enumerate(self.parts)
            )
        count = max(self.count, 0)
        return tuple(
            WorkerPlan(k * count + i, kind) for k, kind in enumerate(kinds) for i in range(count)
        )

    @property
    def worker_count(self) -> int:
        return len(self.workers())


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    stages: tuple[StageSpec, ...]
    task_prompt: str = ""
    description: str = ""
    fail_fast: bool = False
    max_cost_usd: float | None = None
    max_tokens: int | None = None

    def stage(self, name: str) -> StageSpec:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise UsageError(
            f"workflow {self.name!r} has no stage {name!r}: "
            f"its stages are {', '.join(s.name for s in self.stages)}"
        )

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def budget_reached(self, cost_usd: float, tokens: int) -> str | None:
        """Why no new stage may start, or None while the budget allows it."""
        if self.max_cost_usd is not None and cost_usd >= self.max_cost_usd:
            return (
                f"budget reached: ${cost_usd:.2f} spent of max_cost_usd ${self.max_cost_usd:.2f}; "
                "no new stage starts"
            )
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return (
                f"budget reached: {tokens} tokens used of max_tokens {self.max_tokens}; "
                "no new stage starts"
            )
        return None
