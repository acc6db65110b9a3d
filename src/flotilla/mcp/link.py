"""Who calls the tools, and how they reach the API: a Link per transport.

A Link gives each tool call a FleetApi and the caller's defaults: the project
when the call names none, the agent it acts as, and its spawn depth. `fleet
mcp` (stdio) runs in the caller's folder and environment, so it knows them the
way the CLI does (cwd or $FLOTILLA_PROJECT, $FLOTILLA_WORKER, $FLOTILLA_DEPTH).
/mcp on the daemon serves callers from anywhere: they name the project, and
who they are is their token's business (the API reads it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request

from flotilla.counters import count
from flotilla.domain.errors import FlotillaError
from flotilla.mcp.api import FleetApi
from flotilla.mcp.http import bearer_credentials
from flotilla.server.auth import LISTENER_KEY, AuthError, Authority
from flotilla.workspace.repo import find_project

PROJECT_ENV = "FLOTILLA_PROJECT"
WORKER_ENV = "FLOTILLA_WORKER"


@dataclass(frozen=True)
class Caller:
    """What a tool call assumes when it is not told."""

    agent: str | None = None  # the agent the caller is ($FLOTILLA_WORKER)
    local: bool = False  # reaches the daemon as the local user: the API takes `agent` as said
    depth: int = 0  # children of an agent are one level deeper (the spawn depth limit)
    parent: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # passed to new agents, as the CLI does

    @property
    def speaks_as(self) -> str | None:
        """The agent a call names as its actor (sender, author, claimer): a local caller's
        own; a token's agent is the API's to know (naming another one is refused)."""
        return self.agent if self.local else None


class Link(Protocol):
    caller: Caller

    def api(self, ctx: Context) -> AbstractAsyncContextManager[FleetApi]:
        """The FleetApi for this call (closed after it, if made for it)."""

    def project(self, given: str | None) -> str:
        """The project (a repository's path) a call is about: `given`, else the default."""

    def me(self, ctx: Context) -> str | None:
        """The agent the caller is, when known: whose inbox is "yours"."""


class StdioLink:
    """`fleet mcp`: one caller (the process that started it), one API client."""

    def __init__(self, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._cwd = cwd or Path.cwd()
        self._projects: dict[str, str] = {}
        self._api = FleetApi.from_env(self._env)
        parent = self._env.get("FLOTILLA_WORKER_ID") or None
        depth = int(self._env.get("FLOTILLA_DEPTH", "0")) + 1 if parent else 0
        self.caller = Caller(
            agent=self._env.get(WORKER_ENV) or None,
            local=self._api.is_local,
            depth=depth,
            parent=parent,
            env=self._env if self._api.is_local else {},
        )

    @asynccontextmanager
    async def api(self, ctx: Context) -> AsyncIterator[FleetApi]:
        yield self._api

    async def aclose(self) -> None:
        await self._api.aclose()

    def me(self, ctx: Context) -> str | None:
        return self.caller.agent

    def project(self, given: str | None) -> str:
        where = given or self._env.get(PROJECT_ENV) or str(self._cwd)
        if where not in self._projects:
            path = Path(where).expanduser()
            try:
                root = find_project(path if path.is_absolute() else self._cwd / path)
            except FlotillaError as exc:
                count("mcp.project_not_found")
                raise ToolError(f"{exc} (pass 'project': the path of a git repository)") from exc
            self._projects[where] = str(root)
        return self._projects[where]


class HttpLink:
    """/mcp on the daemon: each call reaches the daemon's own app as the MCP request's
    caller, with its Authorization header and listener (Unix socket or TCP)."""

    caller = Caller()

    def __init__(self, app: FastAPI) -> None:
        self._app = app  # the daemon's app: its routes, and its authority

    @asynccontextmanager
    async def api(self, ctx: Context) -> AsyncIterator[FleetApi]:
        request = ctx.request_context.request
        if not isinstance(request, Request):
            raise ToolError("this tool needs an HTTP request to know its caller")
        listener = request.scope.get(LISTENER_KEY)
        api = FleetApi.in_process(self._app, request.headers.get("authorization"), listener)
        try:
            yield api
        finally:
            await api.aclose()

    def me(self, ctx: Context) -> str | None:
        """The agent the caller's token names (None without one, e.g. a local caller)."""
        request = ctx.request_context.request
        credentials = bearer_credentials(request) if isinstance(request, Request) else None
        authority: Authority = self._app.state.authority
        if credentials is None or authority.tokens is None:
            return None
        try:
            return authority.tokens.verify(credentials.credentials).agent
        except AuthError:  # the guard let it in, so it expired since: nobody known
            count("mcp.caller_unknown")
            return None

    def project(self, given: str | None) -> str:
        if not given:
            raise ToolError("name the project: 'project' is the absolute path of its repository")
        if not Path(given).is_absolute():
            raise ToolError(
                f"project {given!r} is not an absolute path: give the repository's path"
            )
        return given
