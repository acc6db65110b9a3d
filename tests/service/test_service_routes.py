"""Every route of the real app names its permission, and it is the one written here.

A new route fails this test until it is added to ROUTES: the permission of each
endpoint is a decision, not a default.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI

from flotilla.orchestrator.service import FleetService
from flotilla.server.app import build_app
from flotilla.server.auth import Authority, api_routes, route_permission, unguarded_routes
from flotilla.store import open_store

ROUTES = {
    ("POST", "/auth"): None,
    ("GET", "/health"): "read",
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
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        service = FleetService(store, tmp_path, tmux_socket=tmp_socket_name(tmp_path))
        yield build_app(service, Authority.load(tmp_path, {"FLOTILLA_SECRET": "s" * 32}))
    finally:
        store.close()


def tmp_socket_name(tmp_path: Path) -> str:
    return f"flotilla-test-{tmp_path.name}"


def test_every_route_has_the_permission_written_here(app: FastAPI) -> None:
    actual = {}
    for path, route in api_routes(app):
        permission = route_permission(route)
        for method in route.methods or ():
            actual[(method, path)] = permission.value if permission else None
    assert unguarded_routes(app) == []
    assert actual == ROUTES


def test_a_route_without_a_permission_is_found_inside_an_included_router() -> None:
    app = FastAPI()
    router = APIRouter()

    @router.get("/open")
    async def open_route() -> dict[str, str]:
        return {}

    app.include_router(router)
    assert unguarded_routes(app) == ["GET /open"]
