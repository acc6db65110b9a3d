"""What the tool modules share: parameter types (their JSON schema), hints, waiting."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

Ctx = Context[Any, Any]

Project = Annotated[
    str | None,
    Field(
        description="The project: the path of its git repository. Default for `fleet mcp`: "
        "$FLOTILLA_PROJECT, else the repository of the folder it runs in. Required over HTTP."
    ),
]
WorkerName = Annotated[
    str, Field(description="The worker's name, as given when it was created.", min_length=1)
]
WorkflowRef = Annotated[str, Field(description="The workflow's id (or a unique prefix of it).")]
Prompt = Annotated[str, Field(description="What the agent should do.", min_length=1)]
AgentKind = Annotated[
    str | None,
    Field(description="Agent kind: claude, codex, gemini, scripted, ... (default: config)."),
]
Model = Annotated[str | None, Field(description="The model for the agent (default: config).")]
BaseRef = Annotated[
    str | None, Field(description="Start the worktree from this git ref (default: HEAD).")
]
WaitSeconds = Annotated[
    float,
    Field(
        ge=0,
        le=600,
        description="Wait up to this many seconds for it to finish (or need input) "
        "before answering; 0 answers at once.",
    ),
]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
DESTROYS = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

POLL_S = 0.5


async def wait_until(
    fetch: Callable[[], Awaitable[dict[str, Any]]],
    done: Callable[[dict[str, Any]], bool],
    wait_s: float,
) -> dict[str, Any]:
    """Fetch once; while not `done`, fetch again every POLL_S until `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    current = await fetch()
    while not done(current) and time.monotonic() < deadline:
        await anyio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        current = await fetch()
    return current


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
