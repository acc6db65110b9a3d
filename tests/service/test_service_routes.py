"""Every route of the real app names its permission, and it is the one written here.

The app is built as the daemon builds it (build_app with the coordination side's
routers: messages, teams, swarms, checkpoints, tasks). A new route fails this test
until it is added to ROUTES: the permission of each endpoint is a decision, not a default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI

from flotilla.orchestrator.service import FleetService
from flotilla.server.app import build_app
from flotilla.server.auth import Authority, api_routes, route_permission, unguarded_routes
from flotilla.server.coordination_wiring import CoordinationSide
from flotilla.store import open_store

ROUTES = {
    ("POST", "/auth"): None,
    ("GET", "/health"): "read",
    ("GET", "/metrics"): "read",
    ("GET", "/dashboard/me"): "read",  # the viewer's role, for the page's buttons
    ("GET", "/events/stream"): "read",  # SSE; the WebSocket /ws checks its token itself
    ("POST", "/workers"): "spawn",
    ("POST", "/workers/batch"): "spawn",
    ("GET", "/workers"): "read",
    ("GET", "/workers/{name}"): "read",
    ("DELETE", "/workers/{name}"): "kill",
    ("POST", "/workers/{name}/prompt"): "prompt",
    ("GET", "/workers/{name}/result"): "read",
    ("GET", "/workers/{name}/diff"): "read",
    ("GET", "/workers/{name}/transcript"): "read",
    ("GET", "/workers/{name}/raw"): "read",
    ("POST", "/repair"): "admin",
    ("POST", "/shutdown"): "admin",
    ("POST", "/workers/{name}/merge"): "merge",
    ("POST", "/merge"): "merge",
    ("POST", "/batches/{batch}/merge"): "merge",
    ("GET", "/conflicts"): "read",
    ("POST", "/workers/{name}/pr"): "push",
    ("POST", "/workflows/validate"): "read",
    ("POST", "/workflows"): "workflow_run",
    ("GET", "/workflows"): "read",
    ("GET", "/workflows/{ref}"): "read",
    ("GET", "/workflows/{ref}/result"): "read",
    ("POST", "/workflows/{ref}/cancel"): "workflow_run",
    ("POST", "/workflows/{ref}/resume"): "workflow_run",
    ("POST", "/workflows/{ref}/cleanup"): "workflow_run",
    # messages and the event log (routes_messages.py)
    ("POST", "/messages"): "message_send",  # a broadcast needs `broadcast` too
    ("GET", "/inbox/{agent}"): "read",
    ("GET", "/messages/{message_id}"): "read",
    ("POST", "/messages/{message_id}/read"): "message_send",
    ("GET", "/events"): "read",
    # teams, swarms, the blackboard, checkpoints (routes_coordination.py)
    ("POST", "/teams"): "spawn",
    ("GET", "/teams"): "read",
    ("GET", "/teams/{team}"): "read",
    ("POST", "/teams/{team}/members"): "spawn",
    ("POST", "/teams/{team}/spawn"): "spawn",
    ("POST", "/swarms"): "spawn",
    ("GET", "/swarms"): "read",
    ("GET", "/swarms/{swarm}"): "read",
    ("POST", "/swarms/{swarm}/join"): "blackboard_post",
    ("POST", "/swarms/{swarm}/leave"): "blackboard_post",
    ("POST", "/swarms/{swarm}/posts"): "blackboard_post",
    ("GET", "/swarms/{swarm}/posts"): "read",
    ("POST", "/checkpoints"): "checkpoint",
    ("GET", "/checkpoints"): "read",
    ("GET", "/checkpoints/{name}"): "read",
    ("POST", "/checkpoints/{name}/restore"): "checkpoint",
    # tasks (routes_tasks.py)
    ("POST", "/tasks"): "task_create",
    ("GET", "/tasks"): "read",
    ("POST", "/tasks/claim"): "task_claim",
    ("GET", "/tasks/{task_id}"): "read",
    ("GET", "/tasks/{task_id}/history"): "read",
    ("PATCH", "/tasks/{task_id}"): "task_complete",  # and only by the holder or a coordinator
    ("POST", "/tasks/{task_id}/assign"): "task_assign",
    ("POST", "/tasks/{task_id}/heartbeat"): "task_claim",
    ("POST", "/tasks/{task_id}/complete"): "task_complete",
    ("POST", "/tasks/{task_id}/fail"): "task_complete",
    ("POST", "/tasks/{task_id}/release"): "task_claim",
    ("POST", "/tasks/{task_id}/requeue"): "task_assign",
    ("POST", "/tasks/{task_id}/cancel"): "task_assign",
}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        service = FleetService(store, tmp_path, tmux_socket=tmp_socket_name(tmp_path))
        side = await CoordinationSide.start(service)
        try:
            authority = Authority.load(tmp_path, {"FLOTILLA_SECRET": "s" * 32})
            yield build_app(service, authority, routers=side.routers(service), bus=side.bus)
        finally:
            await side.close()
    finally:
        store.close()


def tmp_socket_name(tmp_path: Path) -> str:
    return f"flotilla-test-{tmp_path.name}"


async def test_every_route_has_the_permission_written_here(app: FastAPI) -> None:
    actual = {}
    for path, route in api_routes(app):
        permission = route_permission(route)
        for method in route.methods or ():
            actual[(method, path)] = permission.value if permission else None
    assert unguarded_routes(app) == []
    missing = {k: v for k, v in actual.items() if k not in ROUTES}
    gone = sorted(k for k in ROUTES if k not in actual)
    assert missing == {}, f"routes to add to ROUTES: {missing}"
    assert gone == [], f"routes in ROUTES the app no longer serves: {gone}"
    assert actual == ROUTES


def test_a_route_without_a_permission_is_found_inside_an_included_router() -> None:
    app = FastAPI()
    router = APIRouter()

    @router.get("/open")
    async def open_route() -> dict[str, str]:
        return {}

    app.include_router(router)
    assert unguarded_routes(app) == ["GET /open"]
