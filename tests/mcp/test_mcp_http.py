"""/mcp over streamable HTTP through the SDK's own client, against the daemon's app on a real
uvicorn (mcp_service): the same Bearer tokens as the API, each tool call decided by the
route's permission, and the coordination tools working across agents."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from e2e_support import make_repo
from mcp.client.streamable_http import streamable_http_client
from mcp_service import Service, mcp_service
from mcp_support import REQUIRED_TOOLS, WRITE_HELLO, call, http_session, refused, use_scripted_agent
from mcp_support import wait_worker as wait_for

from mcp import Client

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    made = make_repo(tmp_path / "repo")
    use_scripted_agent(made, WRITE_HELLO)
    return made


@pytest.fixture
def service(tmp_path: Path, repo: Path) -> Iterator[Service]:
    env = {"FLOTILLA_HOME": str(tmp_path / "home")}
    with mcp_service(tmp_path, {**os.environ, **env}) as served:
        yield served


@asynccontextmanager
async def local_session(service: Service) -> Any:
    """/mcp over the Unix socket, with no token: the local user, as for the CLI."""
    transport = httpx2.AsyncHTTPTransport(uds=str(service.socket))
    http = httpx2.AsyncClient(transport=transport, timeout=httpx2.Timeout(60, read=300))
    async with http, Client(streamable_http_client("http://flotilla/mcp", http_client=http)) as c:
        yield c


def test_mcp_over_tcp_needs_a_valid_token(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as http:
        missing = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert missing.status_code == 401
        assert missing.json()["error"].startswith("no token: send the header")
        assert missing.headers["www-authenticate"] == "Bearer"
        bad = {**MCP_HEADERS, "Authorization": "Bearer not-a-jwt"}
        invalid = http.post("/mcp", json=INITIALIZE, headers=bad)
        assert invalid.status_code == 401 and "invalid token" in invalid.json()["error"]
        good = {**MCP_HEADERS, "Authorization": f"Bearer {service.token('monitor')}"}
        accepted = http.post("/mcp", json=INITIALIZE, headers=good)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["result"]["serverInfo"]["name"] == "flotilla"
        health = http.get("/health", headers={"Authorization": good["Authorization"]}).json()
    assert health["errors"]["auth.missing_token"] >= 1  # refusals are counted
    assert health["errors"]["auth.invalid_token"] >= 1


@pytest.mark.slow
async def test_tools_over_http_act_with_the_callers_role(service: Service, repo: Path) -> None:
    project = str(repo)
    async with http_session(service.url, service.token("coordinator", "boss")) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names >= REQUIRED_TOOLS
        assert "name the project" in await refused(client, "list_workers")
        await call(client, "create_worker", name="hello", prompt="greet", project=project)
        worker = await wait_for(client, "hello", project=project)
        assert worker["state"] == "succeeded", worker
        result = await call(client, "collect_worker_result", name="hello", project=project)
        assert [f["path"] for f in result["files"]] == ["hello.txt"]
    async with http_session(service.url, service.token("monitor", "watcher")) as client:
        message = await refused(client, "create_worker", name="other", prompt="x", project=project)
        assert message.endswith(
            "role 'monitor' may not 'spawn' (roles that may: coordinator, team-lead)"
        )
        listed = await call(client, "list_workers", project=project)
        assert [w["name"] for w in listed["workers"]] == ["hello"]  # nothing made
        message = await refused(client, "cancel_worker", name="hello", project=project)
        assert "role 'monitor' may not 'kill'" in message


async def test_over_the_unix_socket_the_caller_is_the_local_user(service: Service) -> None:
    async with local_session(service) as client:
        health = await call(client, "healthcheck")
    assert health["status"] == "ok"


@pytest.mark.slow
async def test_a_lead_and_a_worker_coordinate_through_the_tools(
    service: Service, repo: Path
) -> None:
    project = str(repo)
    lead = service.token("team-lead", agent="lead", team="core")
    member = service.token("worker", agent="w1", team="core")
    async with http_session(service.url, lead) as client:
        team = await call(client, "team_create", name="core", project=project)
        assert team["name"] == "core"
        spawned = await call(client, "team_spawn", team="core", name="w1", prompt="build")
        assert spawned["member"]["role"] == "worker"
        assert (await wait_for(client, "w1", project=project))["state"] == "succeeded"
        status = await call(client, "team_status", team="core")
        assert {m["agent"]: m["worker"]["state"] for m in status["members"]} == {"w1": "succeeded"}
        swarm = await call(client, "swarm_create", name="hunt", goal="find bugs", max_size=2)
        assert swarm["name"] == "hunt"
        sent = await call(client, "send_message", to="w1", body="look at app.py", project=project)
        assert [(m["sender"], m["recipient"]) for m in sent["messages"]] == [("lead", "w1")]
        saved = await call(client, "checkpoint_create", name="cp1", worker="w1", project=project)
        assert saved["name"] == "cp1" and saved["commit"]
        restored = await call(
            client,
            "checkpoint_restore",
            checkpoint="cp1",
            name="w2",
            prompt="go on",
            project=project,
        )
        assert restored["worker"]["name"] == "w2"
        assert restored["checkpoint"]["commit"] == saved["commit"]
        assert (await wait_for(client, "w2", project=project))["state"] == "succeeded"
    async with http_session(service.url, member) as client:
        message = await refused(client, "team_spawn", team="core", name="w3", prompt="x")
        assert "role 'worker' may not 'spawn'" in message
        assert (await call(client, "swarm_join", swarm="hunt"))["joined"] is True
        post = await call(
            client, "blackboard_post", swarm="hunt", topic="findings", body="app.py: off by one"
        )
        assert post["author"] == "w1"  # the token's agent, not a name the caller picked
        page = await call(client, "blackboard_read", swarm="hunt")
        assert [p["body"] for p in page["posts"]] == ["app.py: off by one"]
        assert page["cursor"] == post["id"]
        later = await call(client, "blackboard_read", swarm="hunt", since=page["cursor"])
        assert later["posts"] == []
        inbox = await call(client, "read_inbox", project=project)  # the token's agent's
        assert inbox["agent"] == "w1"
        assert [(m["sender"], m["body"]) for m in inbox["messages"]] == [("lead", "look at app.py")]


@pytest.mark.slow
async def test_tasks_are_handed_out_and_finished_through_the_tools(
    service: Service, repo: Path
) -> None:
    lead = service.token("team-lead", agent="lead", team="core")
    member = service.token("worker", agent="w1", team="core")
    async with http_session(service.url, lead) as client:
        first = await call(client, "task_create", team="core", title="write docs", priority=5)
        second = await call(client, "task_create", team="core", title="fix bug", priority=1)
        assigned = await call(client, "team_assign", task_id=second["id"], assignee="w1")
        assert assigned["state"] == "claimed"
    async with http_session(service.url, member) as client:
        claimed = (await call(client, "task_claim", team="core"))["task"]
        assert claimed["id"] == first["id"]  # the higher priority one
        renewed = await call(
            client, "task_update", task_id=first["id"], status="progress", note="half way"
        )
        assert renewed["lease_expires_at"] > claimed["lease_expires_at"]
        done = await call(
            client, "task_update", task_id=first["id"], status="done", result={"pr": 1}
        )
        assert done["state"] == "done"
        assert "reason" in await refused(
            client, "task_update", task_id=second["id"], status="failed"
        )
        listed = await call(client, "task_list", team="core", state=["done"])
        assert [t["id"] for t in listed["tasks"]] == [first["id"]]
        released = await call(client, "task_update", task_id=second["id"], status="released")
        assert released["state"] == "queued"
    other = service.token("worker", agent="x1", team="elsewhere")
    async with http_session(service.url, other) as client:
        message = await refused(client, "task_claim", team="core")
        assert "may not act on the tasks of team 'core'" in message
