"""The fleet's MCP server: every tool module registered over one Link."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

import flotilla
from flotilla.mcp import tools_messages, tools_tasks, tools_teams, tools_workers, tools_workflows
from flotilla.mcp.api import Endpoint
from flotilla.mcp.link import Link

MODULES = (tools_workers, tools_workflows, tools_teams, tools_tasks, tools_messages)
ENDPOINTS: tuple[Endpoint, ...] = tuple(e for m in MODULES for e in m.ENDPOINTS)

INSTRUCTIONS = """\
Flotilla runs fleets of coding agents, each in its own git worktree, and coordinates them.
Start agents with create_worker (or a whole workflow with create_workflow), follow them with
get_worker_status / get_workflow_status (wait_s waits for the end), and read what they did
with collect_worker_result / collect_workflow_result. Teams, tasks, messages, the blackboard
and checkpoints let agents work together. A refused call says why in one line (a missing
permission names the roles that have it)."""


def build_server(link: Link) -> MCPServer:
    server = MCPServer(
        "flotilla",
        title="Flotilla",
        instructions=INSTRUCTIONS,
        version=flotilla.__version__,
        log_level="WARNING",
    )
    for module in MODULES:
        module.register(server, link)
    return server
