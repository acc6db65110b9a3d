"""The fleet's MCP server: `fleet mcp` (stdio) and /mcp on the daemon (streamable HTTP).

Design: every tool is a call of the daemon's own HTTP API, the one the `fleet`
CLI uses. `fleet mcp` reaches it the way the CLI does (the daemon's Unix
socket, starting the daemon when needed) or, when $FLOTILLA_URL and
$FLOTILLA_TOKEN are set (an agent Flotilla launched), over TCP with that token.
/mcp on the daemon sends each tool call through the same app in process
(httpx's ASGI transport), with the MCP request's own Authorization header.

Why not call the service layer directly: the API is where permissions are
checked (every route names its Permission, some also check who acts), where
input is validated and where errors become one line. Going through it, a tool
cannot do more than the same caller could over HTTP, a tool's error is the API's
message word for word, and nothing is written twice. The cost is one local HTTP
round trip per call (in process for /mcp), small next to what the tools start.

    api.py          FleetApi: the daemon's API over a Unix socket, TCP or in process
    link.py         Link: how a call reaches the API, and the caller's defaults
    tools_*.py      the tools: workers, workflows, teams (swarms, blackboard), tasks,
                    messages (and checkpoints)
    server.py       build_server: the MCPServer with every tool
    http.py         mount_mcp / mcp_running: /mcp on the daemon's app, behind its auth
"""
