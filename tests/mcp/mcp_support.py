"""MCP through the SDK's own client: `fleet mcp` as a real subprocess (stdio), or /mcp over
streamable HTTP with a Bearer token; helpers to call tools and read their answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
from e2e_support import FLEET, Fleet
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from mcp import Client, StdioServerParameters

REQUIRED_TOOLS = {
    "healthcheck",
    "create_worker",
    "get_worker_status",
    "list_workers",
    "collect_worker_result",
    "cancel_worker",
    "cleanup_worker",
    "send_prompt",
    "create_workflow",
    "get_workflow_status",
    "list_workflows",
    "cancel_workflow",
    "collect_workflow_result",
    "cleanup_workflow",
    "team_status",
    "team_spawn",
    "team_assign",
    "team_broadcast",
    "task_create",
    "task_claim",
    "task_update",
    "task_list",
    "send_message",
    "read_inbox",
    "blackboard_post",
    "blackboard_read",
    "checkpoint_create",
    "checkpoint_restore",
}

WRITE_HELLO = """
[[steps]]
action = "say"
text = "working on {prompt}"
[[steps]]
action = "write"
path = "hello.txt"
content = "hello\\n"
[[steps]]
action = "commit"
message = "add hello"
[[steps]]
action = "usage"
input_tokens = 100
output_tokens = 20
cost_usd = 0.01
[[steps]]
action = "summary"
text = "Wrote hello.txt."
[[on_prompt]]
action = "append"
path = "notes.md"
content = "{prompt}\\n"
"""


def use_scripted_agent(repo: Path, script: str, extra: str = "") -> Path:
    """The project's default agent: the scripted one, running `script`."""
    path = repo.parent / "agent.toml"
    path.write_text(script)
    config = repo / ".flotilla" / "config.toml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(
        f'[project]\ndefault_agent = "scripted"\n{extra}\n[agents.scripted]\nscript = "{path}"\n'
    )
    return path


@contextmanager
def fleet_serve(fleet: Fleet) -> Iterator[str]:
    """A real `fleet serve --port 0` (auth on) of the fleet's state home; yields its URL."""
    output = fleet.home.parent / "serve.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "serve", "--port", "0"],
            cwd=fleet.repo,
            env=fleet.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None:
            assert proc.poll() is None, output.read_text()
            assert time.monotonic() < deadline, f"fleet serve did not start: {output.read_text()}"
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)", output.read_text())
            time.sleep(0.05)
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def token_for(fleet: Fleet, url: str, role: str, agent: str = "tester") -> str:
    """A token from POST /auth, with the secret `fleet serve` made in the state home."""
    secret = (fleet.home / "secret").read_text().strip()
    body = {"secret": secret, "agent": agent, "role": role, "ttl_s": 600}
    answer = httpx.post(f"{url}/auth", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


@asynccontextmanager
async def stdio_session(
    fleet: Fleet, env: dict[str, str] | None = None, cwd: Path | None = None
) -> AsyncIterator[Client]:
    """`python -m flotilla.cli mcp` (what `fleet mcp` runs) with the fleet's state home; its
    stderr goes to a file beside the repository, shown when a test fails."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "flotilla.cli", "mcp"],
        env={**fleet.env, **(env or {})},
        cwd=str(cwd or fleet.repo),
    )
    errors = fleet.home.parent / "fleet-mcp.stderr"
    with errors.open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            yield client


@asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=300))
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The tool's structured answer; fails the test with its message if it is an error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text_of(result)}"
    assert result.structured_content is not None, f"{tool}: no structured content"
    # The text block carries the same answer, for clients that read only text.
    assert json.loads(text_of(result)) == result.structured_content
    return dict(result.structured_content)


async def refused(client: Client, tool: str, one_line: bool = True, **arguments: Any) -> str:
    """The message of a tool call that must fail: one line when it comes from the API or
    the tool (the SDK's own argument validation writes several)."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {text_of(result)}"
    message = text_of(result)
    assert not one_line or "\n" not in message, message
    return message


async def wait_worker(client: Client, name: str, **extra: Any) -> dict[str, Any]:
    """get_worker_status, waiting (bounded) until the worker has finished."""
    deadline = time.monotonic() + 120
    while True:
        worker = await call(client, "get_worker_status", name=name, wait_s=30, **extra)
        if worker["state"] in {"succeeded", "failed", "cancelled"}:
            return worker
        assert time.monotonic() < deadline, f"{name} did not finish: {worker}"
