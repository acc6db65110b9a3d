"""HTTP routes over the service layer. Errors become JSON `{"error": ...}` with 4xx/5xx.

Every route names the Permission it needs (`require`, see server/auth.py and
domain/roles.py); only POST /auth and the OpenAPI pages are open to anyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel, Field

import flotilla
from flotilla.bus.filters import EventFilter
from flotilla.bus.transport import Transport
from flotilla.counters import count, snapshot
from flotilla.domain.errors import FlotillaError, NotFound
from flotilla.domain.roles import Permission
from flotilla.domain.states import WorkerState, parse_states
from flotilla.domain.worker import Worker
from flotilla.orchestrator.creation import CreateRequest
from flotilla.orchestrator.service import FleetService, run_blocking
from flotilla.orchestrator.turns import tmux_session_name
from flotilla.server.auth import (
    Authority,
    Principal,
    install_auth,
    require,
    unguarded_routes,
)
from flotilla.server.fastlane import Answer, Decline, FastRoute, install_fast_lane, query_of
from flotilla.server.limits import BodyLimits, install_limits
from flotilla.server.metrics import Metrics, RequestMetrics, metrics_router
from flotilla.server.routes_dashboard import dashboard_router
from flotilla.server.routes_integration import integration_router
from flotilla.server.routes_stream import stream_router
from flotilla.server.routes_workflows import workflow_router


class CreateBody(BaseModel):
    """What a client may ask for: CreateRequest minus the workflow engine's internal
    fields (inherit_worktree and the like), so no request can aim a worker at an
    arbitrary folder."""

    project: str
    name: str
    prompt: str
    agent: str | None = None
    model: str | None = None
    base_ref: str | None = None
    quick: bool = False
    interactive: bool = False
    batch: str | None = None
    depth: int = 0
    parent: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class BatchBody(BaseModel):
    workers: list[CreateBody] = Field(min_length=1, max_length=1000)


class PromptBody(BaseModel):
    text: str


def _needs(permission: Permission) -> list[Any]:
    return [Depends(require(permission))]


READ = _needs(Permission.READ)


def build_app(
    service: FleetService,
    authority: Authority,
    started_at: float | None = None,
    on_shutdown: Callable[[], None] | None = None,
    routers: Sequence[APIRouter] = (),
    bus: Transport | None = None,
    metrics: Metrics | None = None,
    fast_routes: Sequence[FastRoute] = (),
) -> FastAPI:
    """The API; with a `bus`, also the live streams (/ws, /events/stream) and the bus in
    /health. `metrics` (made here if not given) counts requests and serves /metrics."""
    # No OpenTelemetry: FastAPI's per-request look for a configured provider is pure cost.
    telemetry: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="Flotilla", version=flotilla.__version__, telemetry=telemetry)
    started = started_at or time.time()
    install_auth(app, authority)
    install_limits(app)
    metrics = metrics or Metrics(service.store, bus=bus)
    app.state.bus = bus
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.exception_handler(FlotillaError)
    async def flotilla_error(_: Request, exc: FlotillaError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else (400 if exc.exit_code == 2 else 500)
        count(f"api.error.{type(exc).__name__}")
        return JSONResponse({"error": str(exc), "exit_code": exc.exit_code}, status_code=status)

    @app.get("/health", dependencies=READ)
    async def health() -> dict[str, Any]:
        store_ok = await run_blocking(service.store.ping)
        bus_state = await bus_health(bus)
        healthy = store_ok and (bus is None or bus_state["reachable"])
        return {
            "status": "ok" if healthy else "degraded",
            "version": flotilla.__version__,
            "uptime_s": round(time.time() - started, 3),
            "store": {"reachable": store_ok, "url": service.store.url},
            "bus": bus_state,
            "errors": snapshot(),
        }

    @app.post("/workers", dependencies=_needs(Permission.SPAWN))
    async def create(body: CreateBody) -> dict[str, Any]:
        worker = await run_blocking(service.create_worker, CreateRequest(**body.model_dump()))
        return dict(worker.to_dict())

    @app.post("/workers/batch", dependencies=_needs(Permission.SPAWN))
    async def create_batch(body: BatchBody) -> dict[str, Any]:
        """Create many workers in one request; worktrees are made concurrently."""
        requests = [CreateRequest(**w.model_dump()) for w in body.workers]
        outcome = await run_blocking(service.create_workers, requests)
        return {
            "created": [w.to_dict() for w in outcome.created],
            "failed": [{"name": name, "error": error} for name, error in outcome.failed],
        }

    @app.get("/workers", dependencies=READ)
    async def list_workers(
        project: str | None = None,
        state: str | None = None,
        batch: str | None = None,
        pattern: str | None = None,
    ) -> list[dict[str, Any]]:
        states = parse_states(WorkerState, state)
        views = await run_blocking(service.list_workers, project, states, batch, pattern)
        return [v.to_dict() for v in views]

    async def _worker(project: str, name: str) -> Any:
        cached = service.cached_worker(project, name)
        return cached or await run_blocking(service.get_worker, project, name)

    @app.get("/workers/{name}", dependencies=READ)
    async def get_worker(name: str, project: str) -> dict[str, Any]:
        return worker_status(await _worker(project, name))

    @app.delete("/workers/{name}", dependencies=_needs(Permission.KILL))
    async def kill(name: str, project: str, keep_branch: bool = False) -> dict[str, Any]:
        worker = await _worker(project, name)
        killed = await run_blocking(lambda: service.kill(worker, keep_branch=keep_branch))
        return dict(killed.to_dict())

    @app.post("/workers/{name}/prompt", dependencies=_needs(Permission.PROMPT))
    async def prompt(name: str, project: str, body: PromptBody) -> dict[str, Any]:
        worker = await _worker(project, name)
        return dict(await run_blocking(service.prompt, worker, body.text))

    @app.get("/workers/{name}/result", dependencies=READ)
    async def result(name: str, project: str) -> dict[str, Any]:
        worker = await _worker(project, name)
        return dict(service.result(worker))

    @app.get("/workers/{name}/diff", response_class=PlainTextResponse, dependencies=READ)
    async def diff(name: str, project: str, stat: bool = False) -> str:
        worker = await _worker(project, name)
        return str(await run_blocking(service.diff, worker, stat))

    @app.get("/workers/{name}/transcript", dependencies=READ)
    async def transcript(name: str, project: str, lines: int | None = None) -> list[Any]:
        worker = await _worker(project, name)
        return list(await run_blocking(service.transcript, worker, lines))

    @app.get("/workers/{name}/raw", response_class=PlainTextResponse, dependencies=READ)
    async def raw(name: str, project: str) -> str:
        worker = await _worker(project, name)
        return str(await run_blocking(service.raw_output, worker))

    @app.post("/repair", dependencies=_needs(Permission.ADMIN))
    async def repair(project: str) -> list[str]:
        return list(await run_blocking(service.repair, project))

    @app.post("/shutdown", dependencies=_needs(Permission.ADMIN))
    async def shutdown() -> dict[str, str]:
        """Stop the daemon (agents keep running; the next daemon re-adopts them)."""
        if on_shutdown is not None:
            on_shutdown()
        return {"status": "stopping"}

    # Routes are matched in order, one by one: the agents' frequent calls (task claims,
    # messages, posts) come first.
    for router in routers:  # the coordination objects' routes, made by the daemon
        app.include_router(router)
    status = FastRoute("GET", "/workers/{name}", cached_status(service))
    app.include_router(integration_router(service))
    app.include_router(metrics_router(metrics))
    if bus is not None:
        workers = service.store.get_worker
        app.include_router(stream_router(bus, workers=workers, clients=metrics.clients))
    app.include_router(workflow_router(service))
    app.include_router(dashboard_router())  # the page at /, its files need no token
    fast = [status, *fast_routes]
    install_fast_lane(app, authority, fast, metrics, BodyLimits())  # once every route is in
    missing = unguarded_routes(app)
    if missing:
        raise RuntimeError(f"routes without a permission (see server/auth.py): {missing}")
    return app


def worker_status(worker: Worker) -> dict[str, Any]:
    """GET /workers/{name}: the worker, and its tmux session if it is interactive."""
    out = dict(worker.to_dict())
    out["tmux_session"] = tmux_session_name(worker) if worker.interactive else None
    return out


def cached_status(service: FleetService) -> Answer:
    """GET /workers/{name} in the fast lane, for a worker the store has in memory."""

    async def answer(_: Principal, params: dict[str, str], query: dict[str, str], __: Any) -> Any:
        worker = service.cached_worker(query_of(query, "project"), params["name"])
        if worker is None:
            raise Decline  # FastAPI's route reads it from the store
        return worker_status(worker)

    return answer


async def bus_health(bus: Transport | None) -> dict[str, Any]:
    """Whether the bus takes subscribers, and the last seq it fanned out (a probe
    subscription starts there)."""
    if bus is None:
        return {"reachable": False, "last_seq": None}
    try:
        probe = bus.subscribe(EventFilter(), since=None)
    except FlotillaError:
        count("health.bus_unreachable")
        return {"reachable": False, "last_seq": None}
    await probe.close()
    return {"reachable": True, "last_seq": probe.cursor}
