"""The MCP package's parts without a daemon: error messages, URL paths, the caller's
defaults, and that every route a tool calls is a route of the daemon's app."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from e2e_support import git, make_repo
from fastapi import FastAPI
from mcp.server.mcpserver.exceptions import ToolError

from flotilla.mcp.api import Endpoint, FleetApi, api_message
from flotilla.mcp.http import mount_mcp
from flotilla.mcp.link import HttpLink, StdioLink
from flotilla.mcp.server import ENDPOINTS
from flotilla.orchestrator.service import FleetService
from flotilla.server.app import build_app
from flotilla.server.auth import Authority, api_routes, install_auth, route_permission, tag_listener
from flotilla.server.coordination_wiring import CoordinationSide
from flotilla.store import open_store


def response(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_the_apis_message_is_passed_on_in_one_line() -> None:
    assert api_message(response(404, {"error": "no worker named 'x'"})) == "no worker named 'x'"
    invalid = {"detail": [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]}
    assert api_message(response(422, invalid)) == "bad request: name: Field required"
    assert api_message(httpx.Response(502, text="Bad Gateway\n")) == "Bad Gateway"
    unknown = api_message(response(404, {"detail": "Not Found"}), Endpoint("GET", "/tasks"))
    assert unknown.startswith("the flotilla daemon does not serve GET /tasks")


def test_names_in_a_path_are_one_quoted_segment() -> None:
    endpoint = Endpoint("GET", "/workers/{name}/result")
    assert endpoint.url({"name": "a b%"}) == "/workers/a%20b%25/result"
    for bad in ("..", ".", "", "a/b"):
        with pytest.raises(ToolError, match="is not a valid name"):
            endpoint.url({"name": bad})


def test_fleet_mcp_finds_the_project_like_the_cli(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "src").mkdir()
    git(repo, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "side")
    link = StdioLink(env={"FLOTILLA_HOME": str(tmp_path / "home")}, cwd=repo / "src")
    assert link.project(None) == str(repo)
    assert link.project(str(tmp_path / "linked")) == str(repo)  # an agent's worktree
    with pytest.raises(ToolError, match="pass 'project'"):
        link.project(str(tmp_path))
    assert link.caller.local and link.caller.depth == 0


def test_an_agent_of_the_fleet_spawns_one_level_deeper_and_speaks_as_itself(
    tmp_path: Path,
) -> None:
    env = {
        "FLOTILLA_HOME": str(tmp_path / "home"),
        "FLOTILLA_WORKER": "w1",
        "FLOTILLA_WORKER_ID": "id-1",
        "FLOTILLA_DEPTH": "1",
    }
    local = StdioLink(env=env, cwd=tmp_path)
    assert (local.caller.depth, local.caller.parent, local.caller.speaks_as) == (2, "id-1", "w1")
    assert local.caller.env == env  # handed to its children, as the CLI does
    remote = StdioLink(env={**env, "FLOTILLA_URL": "http://127.0.0.1:9", "FLOTILLA_TOKEN": "t"})
    assert remote.caller.speaks_as is None  # the token says who it is
    assert remote.caller.env == {}  # its environment is not the daemon's business


def test_over_http_the_project_must_be_an_absolute_path() -> None:
    link = HttpLink(FastAPI())
    with pytest.raises(ToolError, match="name the project"):
        link.project(None)
    with pytest.raises(ToolError, match="not an absolute path"):
        link.project("repo")
    assert link.project("/srv/repo") == "/srv/repo"


async def test_an_unreachable_daemon_is_a_tool_error_naming_it() -> None:
    api = FleetApi.remote("http://127.0.0.1:9", "token")  # port 9: nothing listens
    with pytest.raises(
        ToolError, match=r"cannot reach the flotilla daemon at http://127\.0\.0\.1:9"
    ):
        await api.call(Endpoint("GET", "/health"))
    await api.aclose()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The daemon's app, built as server/daemon.py builds it."""
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        service = FleetService(store, tmp_path, tmux_socket=f"flotilla-test-{tmp_path.name}")
        side = await CoordinationSide.start(service)
        authority = Authority.load(tmp_path, {"FLOTILLA_SECRET": "s" * 32})
        yield build_app(service, authority, routers=side.routers(service))
        await side.close()
    finally:
        store.close()


def _shape(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def _served(app: FastAPI) -> dict[tuple[str, str], str | None]:
    return {
        (method, _shape(path)): getattr(route_permission(route), "value", None)
        for path, route in api_routes(app)
        for method in route.methods or ()
    }


def test_every_route_a_tool_calls_is_served_with_a_permission(app: FastAPI) -> None:
    served = _served(app)
    called = {(e.method, _shape(e.path)) for e in ENDPOINTS}
    assert called - set(served) == set(), "tools call routes the app does not serve"
    assert all(served[c] is not None for c in called)


async def test_mcp_on_an_app_that_is_not_running_it_says_so() -> None:
    app = FastAPI()
    install_auth(app, Authority.load(Path("/nonexistent"), {"FLOTILLA_SECRET": "s" * 32}))
    mount_mcp(app)
    local = tag_listener(app, local=True)
    transport = httpx.ASGITransport(app=local)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
        answer = await http.post("/mcp", json={})
    assert answer.status_code == 503
    assert "serve the app inside mcp_running(app)" in answer.json()["error"]


def test_the_daemon_pays_for_the_mcp_sdk_only_when_mcp_is_used() -> None:
    """Importing what the daemon imports to mount /mcp must not import the SDK (most of a
    second at every daemon start)."""
    probe = "import sys, flotilla.mcp.http; print('mcp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
