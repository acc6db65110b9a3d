"""The MCP tools' way to the fleet: the daemon's own HTTP API, over one of three transports.

    local        the daemon's Unix socket (started if needed), as the `fleet` CLI does;
                 the caller is the local user (role coordinator), as for the CLI
    remote       FLOTILLA_URL with the Bearer token FLOTILLA_TOKEN (e.g. an agent that
                 Flotilla launched); the token's role applies
    in-process   the daemon's app itself (httpx's ASGI transport), for /mcp on the daemon;
                 the MCP request's own Authorization header and listener are passed on

Whatever the transport, an API error becomes a ToolError carrying the API's
one-line message, so the model reads exactly what the CLI would print.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx
from mcp.server.mcpserver.exceptions import ToolError
from starlette.types import ASGIApp, Receive, Scope, Send

from flotilla.counters import count
from flotilla.domain.errors import FlotillaError
from flotilla.server.auth import LISTENER_KEY
from flotilla.server.client import DaemonClient

URL_ENV = "FLOTILLA_URL"
TOKEN_ENV = "FLOTILLA_TOKEN"
TIMEOUT_S = 600.0  # creating a batch or merging may take minutes; the API bounds its own work
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Endpoint:
    """One route of the API that a tool calls; `path` may hold {placeholders}."""

    method: str
    path: str

    def url(self, args: Mapping[str, str]) -> str:
        return _PARAM.sub(lambda m: segment(m.group(1), args[m.group(1)]), self.path)


def segment(what: str, value: str) -> str:
    """A value that goes into a URL path: one segment, quoted, never '.' or '..'."""
    if not value or value in {".", ".."} or "/" in value:
        raise ToolError(f"{what} {value!r} is not a valid name: use letters, digits, '.', '_', '-'")
    return quote(value, safe="")


def api_message(response: httpx.Response, endpoint: Endpoint | None = None) -> str:
    """The one line an error response says: `error` (Flotilla's), else FastAPI's `detail`."""
    try:
        body = response.json()
    except json.JSONDecodeError:
        count("mcp.error_not_json")
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    detail = body.get("detail") if isinstance(body, dict) else body
    if response.status_code in (404, 405) and detail in ("Not Found", "Method Not Allowed"):
        route = f"{endpoint.method} {endpoint.path}" if endpoint else "this route"
        return (
            f"the flotilla daemon does not serve {route}: it runs an older version "
            "(restart it: `fleet daemon stop`) or does not offer this yet"
        )
    if isinstance(detail, list):  # request validation: name each field and what is wrong
        problems = [
            f"{'.'.join(str(p) for p in item.get('loc', ())[1:]) or 'request'}: {item.get('msg')}"
            for item in detail
            if isinstance(item, dict)
        ]
        return "bad request: " + "; ".join(problems)
    return str(detail) if detail else f"HTTP {response.status_code}"


class FleetApi:
    """An async client of the daemon's HTTP API for one caller."""

    def __init__(
        self, http: httpx.AsyncClient, where: str, local: DaemonClient | None = None
    ) -> None:
        self._http = http
        self.where = where  # for messages: how the daemon is reached
        self._local = local  # set: the daemon may be started (again) on demand

    @classmethod
    def local(cls, env: Mapping[str, str]) -> FleetApi:
        daemon = DaemonClient(dict(env))
        transport = httpx.AsyncHTTPTransport(uds=str(daemon.socket))
        http = httpx.AsyncClient(transport=transport, base_url="http://flotilla", timeout=TIMEOUT_S)
        return cls(http, f"the daemon's socket {daemon.socket}", daemon)

    @classmethod
    def remote(cls, url: str, token: str) -> FleetApi:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=TIMEOUT_S)
        return cls(http, url)

    @classmethod
    def in_process(cls, app: ASGIApp, authorization: str | None, listener: str | None) -> FleetApi:
        """Requests to `app` itself, as the MCP request's caller: same token, same listener
        (so a caller over the Unix socket stays local, and over TCP needs its token)."""

        async def tagged(scope: Scope, receive: Receive, send: Send) -> None:
            if listener is not None:
                scope[LISTENER_KEY] = listener
            await app(scope, receive, send)

        headers = {"Authorization": authorization} if authorization else {}
        transport = httpx.ASGITransport(app=tagged, raise_app_exceptions=False)
        http = httpx.AsyncClient(
            transport=transport, base_url="http://flotilla", headers=headers, timeout=TIMEOUT_S
        )
        return cls(http, "the daemon (in process)")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FleetApi:
        """Remote when FLOTILLA_URL is set (with FLOTILLA_TOKEN), else the local daemon."""
        url = env.get(URL_ENV, "")
        if url:
            return cls.remote(url, env.get(TOKEN_ENV, ""))
        return cls.local(env)

    @property
    def is_local(self) -> bool:
        return self._local is not None

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._local is not None:
            self._local.close()

    async def call(
        self,
        endpoint: Endpoint,
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """The route's JSON (or text) answer; a ToolError with the API's message on 4xx/5xx."""
        url = endpoint.url(path or {})
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._send(endpoint.method, url, query, body)
        except httpx.TransportError as exc:
            count("mcp.daemon_unreachable")
            raise ToolError(f"cannot reach the flotilla daemon at {self.where}: {exc}") from exc
        if response.status_code >= 400:
            raise ToolError(api_message(response, endpoint))
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    async def _send(
        self, method: str, url: str, query: dict[str, str], body: Any
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {"params": query}
        if body is not None:
            kwargs["json"] = body
        if self._local is None:
            return await self._http.request(method, url, **kwargs)
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.ConnectError:  # never sent: safe to send again once the daemon runs
            count("mcp.daemon_started")
            await self._start_daemon()
            return await self._http.request(method, url, **kwargs)

    async def _start_daemon(self) -> None:
        assert self._local is not None
        try:
            await anyio.to_thread.run_sync(self._local.ensure_running)
        except FlotillaError as exc:
            count("mcp.daemon_start_failed")
            raise ToolError(str(exc)) from exc


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
