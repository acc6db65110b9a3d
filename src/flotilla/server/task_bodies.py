"""Request bodies of the task routes (server/routes_tasks.py): each refuses unknown fields
and holds every value within the limits the task service enforces."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flotilla.domain.tasks import (
    MAX_DEPENDENCIES,
    MAX_LABELS,
    MAX_LEASE_S,
    MAX_TITLE_LENGTH,
    PRIORITY_RANGE,
)
from flotilla.orchestrator.tasks import MAX_DESCRIPTION, MAX_REASON

NAME = 128

Lease = Field(default=None, gt=0, le=MAX_LEASE_S, description="Seconds until the claim lapses.")
Actor = Field(default=None, min_length=1, max_length=NAME)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBody(_Body):
    team: str = Field(min_length=1, max_length=NAME)
    title: str = Field(min_length=1, max_length=MAX_TITLE_LENGTH)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    labels: list[str] = Field(default_factory=list, max_length=MAX_LABELS)
    priority: int = Field(default=0, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_DEPENDENCIES)
    agent_kind: str | None = Field(default=None, min_length=1, max_length=NAME)
    requires: list[str] = Field(default_factory=list, max_length=MAX_LABELS)


class UpdateBody(_Body):
    """Only the fields given change; `agent_kind: null` lifts the kind restriction."""

    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE_LENGTH)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    labels: list[str] | None = Field(default=None, max_length=MAX_LABELS)
    priority: int | None = Field(default=None, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])
    depends_on: list[str] | None = Field(default=None, max_length=MAX_DEPENDENCIES)
    agent_kind: str | None = Field(default=None, min_length=1, max_length=NAME)
    requires: list[str] | None = Field(default=None, max_length=MAX_LABELS)
    note: str | None = Field(default=None, max_length=MAX_REASON)
    expect_version: int | None = Field(default=None, ge=0)
    actor: str | None = Actor


class ClaimBody(_Body):
    claimer: str | None = Actor
    team: str | None = Field(default=None, min_length=1, max_length=NAME)
    agent_kind: str | None = Field(default=None, min_length=1, max_length=NAME)
    labels: list[str] = Field(default_factory=list, max_length=MAX_LABELS)
    lease_s: float | None = Lease


class AssignBody(_Body):
    assignee: str = Field(min_length=1, max_length=NAME)
    lease_s: float | None = Lease
    reassign: bool = False


class HeartbeatBody(_Body):
    holder: str | None = Actor
    lease_s: float | None = Lease


class CompleteBody(_Body):
    result: Any = None
    actor: str | None = Actor


class FailBody(_Body):
    reason: str = Field(min_length=1, max_length=MAX_REASON)
    result: Any = None
    actor: str | None = Actor


class ReasonBody(_Body):
    reason: str | None = Field(default=None, max_length=MAX_REASON)
    actor: str | None = Actor
