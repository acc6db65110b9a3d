"""`fleet mcp`: the fleet's MCP tools over stdio, for Claude Code, Codex, Gemini CLI, Cursor.

It speaks to the same daemon as the CLI: its Unix socket (started when needed),
or $FLOTILLA_URL with $FLOTILLA_TOKEN when those are set. Stdout carries only
MCP messages; logs go to stderr. The MCP SDK is imported only by this command
(it takes most of a second to import; every other command starts without it).
"""

from __future__ import annotations

import typer


def mcp() -> None:
    """Serve the fleet's MCP tools on stdin/stdout (e.g. `claude mcp add flotilla -- fleet mcp`)."""
    import anyio

    from flotilla.mcp.link import StdioLink
    from flotilla.mcp.server import build_server

    link = StdioLink()

    async def serve() -> None:
        try:
            await build_server(link).run_stdio_async()
        finally:
            await link.aclose()

    anyio.run(serve)


def register(app: typer.Typer) -> None:
    app.command()(mcp)
