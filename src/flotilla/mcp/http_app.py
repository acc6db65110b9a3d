"""The MCP server behind /mcp: the tools over the daemon's own app, as streamable HTTP.

Stateless JSON mode: every MCP request stands alone, so there is no session to
hijack or to clean up, and the tools need no server-to-client requests.
DNS-rebinding protection is on only when TCP callers need no token (`--no-auth`,
loopback only); with auth on, a page a browser was tricked into loading would
still lack the token. "flotilla" is the host name the Unix-socket clients use.
"""

from __future__ import annotations

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from flotilla.mcp.link import HttpLink
from flotilla.mcp.server import build_server
from flotilla.server.auth import Authority

PATH = "/mcp"
LOCAL_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "flotilla"]
LOCAL_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def build_http_app(app: FastAPI) -> tuple[MCPServer, ASGIApp]:
    """The MCP server whose tools call `app`, and the ASGI app serving it at /mcp."""
    authority: Authority = app.state.authority
    server = build_server(HttpLink(app))
    protect = not authority.tcp_auth
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=protect,
        allowed_hosts=LOCAL_HOSTS if protect else [],
        allowed_origins=LOCAL_ORIGINS if protect else [],
    )
    inner = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        transport_security=security,
    )
    return server, inner
