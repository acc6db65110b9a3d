"""The typed configuration: one pydantic model per `config.toml` section.

Models are strict (TOML already has types, so `max_concurrent = "8"` is an error,
not a silent conversion), frozen, and forbid unknown keys so typos are caught.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from flotilla.executors.base import AgentSettings

# Errors raised by our own validators carry this type; their message is used verbatim.
CUSTOM_ERROR = "flotilla_config"

NonEmpty = Annotated[str, Field(min_length=1)]
Seconds = Annotated[float, Field(ge=0.1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Delay = Annotated[float, Field(ge=0, allow_inf_nan=False)]

_REF_PART = re.compile(r"[A-Za-z0-9._-]+")


def _problem(message: str, **context: object) -> PydanticCustomError:
    return PydanticCustomError(CUSTOM_ERROR, message, dict(context))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ProjectConfig(_Section):
    default_agent: NonEmpty = "claude"
    branch_prefix: NonEmpty = "flotilla"
    worktree_root: str = ""  # empty: under the state home; relative: to the repo root
    base_ref: NonEmpty = "HEAD"
    credential_files: list[str] = Field(default_factory=list)
    setup_commands: list[str] = Field(default_factory=list)
    quick_setup: list[str] = Field(default_factory=list)  # run instead with --quick
    test_command: str = ""
    allowed_repositories: list[str] = Field(default_factory=list)  # empty: any
    project_type: NonEmpty = "generic"

    @field_validator("branch_prefix")
    @classmethod
    def _branch_prefix_is_a_ref(cls, value: str) -> str:
        parts = value.split("/")
        if any(not _REF_PART.fullmatch(p) or p.startswith((".", "-")) for p in parts) or (
            ".." in value or value.endswith(".lock")
        ):
            raise _problem(
                "must be a valid git branch prefix such as 'flotilla' or 'team/agents', got {v}",
                v=repr(value),
            )
        return value

    @field_validator("allowed_repositories")
    @classmethod
    def _absolute_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not os.path.isabs(os.path.expanduser(pattern)):
                raise _problem(
                    "entries must be absolute paths or globs such as '/home/me/src/*', got {v}",
                    v=repr(pattern),
                )
        return value

    @field_validator("credential_files")
    @classmethod
    def _relative_credentials(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or os.path.isabs(name) or ".." in Path(name).parts:
                raise _problem(
                    "entries must be paths relative to the repository root, got {v}", v=repr(name)
                )
        return value

    def allows_repository(self, repo: Path) -> bool:
        """True when `repo` matches `allowed_repositories` (or that list is empty)."""
        if not self.allowed_repositories:
            return True
        resolved = str(repo.expanduser().resolve())
        for pattern in self.allowed_repositories:
            expanded = os.path.expanduser(pattern).rstrip("/") or "/"
            if fnmatch.fnmatchcase(resolved, expanded):
                return True
        return False


class LimitsConfig(_Section):
    max_concurrent: Annotated[int, Field(ge=1)] = 4
    timeout_s: Seconds = 3600
    stale_timeout_s: Seconds = 600  # no output for this long: the worker is stale
    max_restarts: Count = 2
    max_spawn_depth: Count = 2  # how deep agents may launch agents
    setup_timeout_s: Seconds = 900
    test_timeout_s: Seconds = 900
    # Worktrees kept checked out in advance, so a launch costs a rename, not a checkout
    # (see flotilla.orchestrator.pooling). 0: no pool.
    worktree_pool: Count = 0


class RetryConfig(_Section):
    max_retries: Count = 3
    base_delay_s: Delay = 5.0
    max_delay_s: Delay = 300.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.2

    @model_validator(mode="after")
    def _max_not_below_base(self) -> Self:
        if self.max_delay_s < self.base_delay_s:
            raise _problem(
                "must be >= retry.base_delay_s ({b}), got {m}",
                key="max_delay_s",
                m=self.max_delay_s,
                b=self.base_delay_s,
            )
        return self


class AgentConfig(_Section):
    """`[agents.<kind>]`: the same fields as `flotilla.executors.base.AgentSettings`."""

    binary: NonEmpty | None = None
    model: NonEmpty | None = None
    extra_flags: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    permission_mode: NonEmpty | None = None
    command: NonEmpty | None = None
    script: NonEmpty | None = None
    mcp: bool | None = None  # give this kind the fleet's MCP server; None: [mcp] give_agents

    def to_settings(self, give_mcp: bool = False) -> AgentSettings:
        return AgentSettings(
            binary=self.binary,
            model=self.model,
            extra_flags=tuple(self.extra_flags),
            env=dict(self.env),
            permission_mode=self.permission_mode,
            command=self.command,
            script=self.script,
            mcp=give_mcp if self.mcp is None else self.mcp,
        )


class PriceConfig(_Section):
    """`[prices."<model>"]`: US dollars per million tokens (see flotilla.executors.pricing)."""

    input_per_mtok: Money
    output_per_mtok: Money
    cached_input_per_mtok: Money | None = None  # None: cached input is billed as input


class StoreConfig(_Section):
    url: str = ""  # empty: a SQLite file in the state home

    @field_validator("url")
    @classmethod
    def _looks_like_a_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise _problem(
                "must be a database URL such as 'postgresql://host/db'"
                " or 'sqlite:///path', got {v}",
                v=repr(value),
            )
        return value


class McpConfig(_Section):
    """`[mcp]`: the fleet's MCP server (`fleet mcp`) for the agents Flotilla launches."""

    give_agents: bool = False  # every agent kind that can take one (per kind: [agents.X] mcp)


MIN_KEEP_EVENTS = 1000


class BusConfig(_Section):
    """`[bus]`: how long the daemon keeps the bus's event log (0 turns a limit off).

    One log serves every project, so the daemon reads this from the user file and the
    environment only (a project file may not set it). Events older than `keep_days`, or
    beyond the newest `keep_events`, are deleted (flotilla.store.bus_retention)."""

    keep_days: Count = 7
    keep_events: Count = 1_000_000

    @field_validator("keep_events")
    @classmethod
    def _room_for_live_readers(cls, value: int) -> int:
        # Live subscribers read pages of hundreds just behind the head: a tiny log would
        # lose events before they were fanned out.
        if 0 < value < MIN_KEEP_EVENTS:
            raise _problem(
                "must be 0 (no limit) or at least {m}, got {v}", m=MIN_KEEP_EVENTS, v=value
            )
        return value


class Config(_Section):
    """The whole configuration. Built by `flotilla.config.load_config`."""

    project: ProjectConfig = Field(default_factory=ProjectConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    store: StoreConfig = Field(default_factory=StoreConfig)
    mcp: McpConfig = Field(default_factory=McpConfig)
    bus: BusConfig = Field(default_factory=BusConfig)

    def agent(self, kind: str) -> AgentConfig:
        """The `[agents.<kind>]` table, or its defaults when the file has none."""
        return self.agents.get(kind) or AgentConfig()

    def agent_settings(self, kind: str) -> AgentSettings:
        return self.agent(kind).to_settings(give_mcp=self.mcp.give_agents)

    def unknown_agent_kinds(self, known: set[str]) -> list[str]:
        """Kinds named in `[agents.*]` or `project.default_agent` that are not in `known`."""
        named = set(self.agents) | {self.project.default_agent}
        return sorted(named - known)


def _annotation_at(path: tuple[str, ...]) -> Any:
    """The type a key holds (`Config` for the empty path), or None for an unknown key."""
    node: Any = Config
    for segment in path:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(segment)
            if field is None:
                return None
            node = field.annotation
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            return None
    return node


def expects_string(path: tuple[str, ...]) -> bool:
    """True when the key holds a string (possibly optional), e.g. project.base_ref."""
    node = _annotation_at(path)
    options = get_args(node) if get_origin(node) in (Union, UnionType) else (node,)
    bare = {get_args(o)[0] if get_origin(o) is Annotated else o for o in options}
    return bare - {NoneType} == {str}


def known_keys(path: tuple[str, ...]) -> list[str]:
    """The keys a table accepts (empty for free-form tables such as [agents])."""
    node = _annotation_at(path)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []
