"""Streamable HTTP at /mcp on the daemon's own app, behind the same auth as the API.

    mount_mcp(app)                  in build_app: serves POST/GET/DELETE /mcp
    async with mcp_running(app):    around serving: owns the MCP session manager

Auth: over TCP a request to /mcp must show a valid Bearer token (the JWT of
POST /auth), checked here before the MCP layer sees it: 401 with the API's
message and counter otherwise. Over the Unix socket the caller is the local
user, as for every route (and with `fleet serve --no-auth`, loopback only, every
caller is). Each tool call then goes through the API in process with the
caller's own Authorization header, so the route's permission decides.

The MCP SDK takes most of a second to import, so this module does not import
it: the first request to /mcp does (in a thread), builds the server
(http_app.py) and starts its session manager in mcp_running's task group. A
daemon that never sees an MCP client never pays for it.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from flotilla.counters import count
from flotilla.server.auth import AuthError, is_local, principal_for

PATH = "/mcp"
STATE_KEY = "mcp_endpoint"


def mount_mcp(app: FastAPI) -> None:
    """Serve the fleet's MCP tools at /mcp of `app` (a build_app app: its authority is set).
    Not an APIRoute, so it is no REST route: not in the OpenAPI document nor the
    route-permission table; its guard is the token check below."""
    endpoint = _Endpoint(app)
    # An object, not a function: Starlette then calls it as an ASGI app.
    app.router.routes.append(Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    setattr(app.state, STATE_KEY, endpoint)


@asynccontextmanager
async def mcp_running(app: FastAPI) -> AsyncIterator[None]:
    """Let /mcp serve while inside (a no-op when /mcp is not mounted); on leaving, its
    session manager stops with its requests."""
    endpoint: _Endpoint | None = getattr(app.state, STATE_KEY, None)
    if endpoint is None:
        yield
        return
    async with anyio.create_task_group() as group:
        endpoint.start(group)
        try:
            yield
        finally:
            endpoint.stop()


class _Endpoint:
    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._inner: ASGIApp | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._stopping: anyio.Event | None = None
        self._lock: anyio.Lock | None = None

    def start(self, group: anyio.abc.TaskGroup) -> None:
        self._group = group
        self._stopping = anyio.Event()
        self._lock = anyio.Lock()

    def stop(self) -> None:
        """Stop the session manager; a request after this is answered 503."""
        if self._stopping is not None:
            self._stopping.set()
        self._group = None
        self._inner = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_local(scope):
            request = Request(scope)
            try:
                principal_for(request, bearer_credentials(request))
            except AuthError as exc:
                count(exc.counter)
                await _refuse(exc.status, str(exc), scope, receive, send)
                return
        inner = await self._ready()
        if inner is None:
            count("mcp.not_running")
            message = "MCP is not running on this server: serve the app inside mcp_running(app)"
            await _refuse(503, message, scope, receive, send)
            return
        await inner(scope, receive, send)

    async def _ready(self) -> ASGIApp | None:
        """The MCP app, built and started on first use."""
        if self._inner is not None or self._group is None or self._lock is None:
            return self._inner
        async with self._lock:
            if self._inner is None and self._group is not None:
                module = await anyio.to_thread.run_sync(
                    importlib.import_module, "flotilla.mcp.http_app"
                )
                server, inner = module.build_http_app(self._app)
                await self._group.start(self._run, server)
                self._inner = inner
        return self._inner

    async def _run(self, server: Any, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        assert self._stopping is not None
        async with server.session_manager.run():
            task_status.started()
            await self._stopping.wait()


async def _refuse(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    await JSONResponse({"error": message}, status, headers=headers)(scope, receive, send)


def bearer_credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
