"""GET /metrics: the fleet in Prometheus' text format (prometheus-client).

Two kinds of figures. Those the store knows (workers by state and agent kind, the
queue, tokens and cost, tasks, messages) are read at scrape time with three GROUP BY
queries, so they are right after a daemon restart and cost nothing between scrapes.
Those only this process sees are kept in memory: API requests (a pure ASGI middleware,
labelled by route template, never by raw path), worker durations (observed by the
supervisor's on_worker_end hook), the error counters of flotilla.counters, the bus
head and the open streams. Each daemon has its own registry, not the global one.

Tokens and cost are sums over the workers stored, exposed as counters (`_total`):
they only grow, except when a worker's row is removed, which Prometheus reads as a
counter reset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import flotilla
from flotilla.bus.message import MessageState
from flotilla.counters import count, snapshot
from flotilla.domain.roles import Permission
from flotilla.domain.states import WorkerState
from flotilla.domain.tasks import TaskState
from flotilla.domain.worker import Worker
from flotilla.orchestrator.service import run_blocking
from flotilla.server.auth import require
from flotilla.server.routes_stream import StreamClients
from flotilla.store.base import Store
from flotilla.store.bus_schema import messages
from flotilla.store.schema import workers
from flotilla.store.sql import SqlStore
from flotilla.store.task_schema import tasks

UNMATCHED = "<unmatched>"  # the route label of requests no route matched (404s)
WORKER_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_DELIVERED = (MessageState.DELIVERED.value, MessageState.READ.value)

# The `_created` series would double the exposition and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass
class FleetCounts:
    """What the store says at one moment; the rows of three GROUP BY queries."""

    workers: dict[tuple[str, str], int] = field(default_factory=dict)  # (state, agent)
    usage: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # agent -> in, out, $
    tasks: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)


def read_counts(store: SqlStore) -> FleetCounts:
    w, t, m = workers.c, tasks.c, messages.c
    by_worker = sa.select(
        w.state,
        w.agent,
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(w.input_tokens), 0),
        sa.func.coalesce(sa.func.sum(w.output_tokens), 0),
        sa.func.coalesce(sa.func.sum(w.cost_usd), 0.0),
    ).group_by(w.state, w.agent)
    found = FleetCounts()
    with store.engine.connect() as conn:
        for state, agent, number, tokens_in, tokens_out, cost in conn.execute(by_worker):
            found.workers[(state, agent)] = int(number)
            before = found.usage.get(agent, (0, 0, 0.0))
            found.usage[agent] = (
                before[0] + int(tokens_in),
                before[1] + int(tokens_out),
                before[2] + float(cost),
            )
        for state, number in conn.execute(sa.select(t.state, sa.func.count()).group_by(t.state)):
            found.tasks[state] = int(number)
        for state, number in conn.execute(sa.select(m.state, sa.func.count()).group_by(m.state)):
            found.messages[state] = int(number)
    return found


class FleetCollector(Collector):
    """The families computed at scrape time (from the store, the counters, the bus)."""

    def __init__(self, store: Store, head: Any, clients: StreamClients | None) -> None:
        self.store = store
        self.head = head  # () -> the bus's last seq, or None without a bus
        self.clients = clients

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("flotilla_store_up", "1 if the store answered this scrape")
        counts = None
        if isinstance(self.store, SqlStore):
            try:
                counts = read_counts(self.store)
            except sa.exc.SQLAlchemyError:
                count("metrics.store_unreadable")
        up.add_metric([], 1 if counts is not None else 0)
        yield up
        if counts is not None:
            yield from _store_families(counts)
        errors = CounterMetricFamily(
            "flotilla_errors", "Caught error paths, by counter name", labels=["name"]
        )
        counted = snapshot()
        for name, value in counted.items():
            errors.add_metric([name], value)
        yield errors
        yield CounterMetricFamily(
            "flotilla_events_pruned",
            "Events the bus's retention deleted from the event log ([bus] keep_days/keep_events)",
            value=counted.get("bus.events_pruned", 0),
        )
        info = GaugeMetricFamily("flotilla_info", "The running version", labels=["version"])
        info.add_metric([flotilla.__version__], 1)
        yield info
        if self.head is not None:
            yield GaugeMetricFamily(
                "flotilla_bus_last_seq", "The last event seq fanned out", value=self.head()
            )
        if self.clients is not None:
            streams = GaugeMetricFamily(
                "flotilla_stream_clients", "Open live streams", labels=["transport"]
            )
            streams.add_metric(["ws"], self.clients.ws)
            streams.add_metric(["sse"], self.clients.sse)
            yield streams


def _store_families(counts: FleetCounts) -> Iterator[Metric]:
    by_state = GaugeMetricFamily(
        "flotilla_workers", "Workers by state and agent kind", labels=["state", "agent"]
    )
    agents = sorted({agent for _, agent in counts.workers})
    for agent in agents:
        for state in WorkerState:
            by_state.add_metric([state.value, agent], counts.workers.get((state.value, agent), 0))
    yield by_state
    queued = sum(n for (state, _), n in counts.workers.items() if state == WorkerState.QUEUED)
    yield GaugeMetricFamily(
        "flotilla_queue_depth", "Workers queued for a slot (or a retry)", value=queued
    )
    tokens = CounterMetricFamily(
        "flotilla_tokens", "Tokens used, by agent kind", labels=["agent", "direction"]
    )
    cost = CounterMetricFamily("flotilla_cost_usd", "Cost in USD, by agent kind", labels=["agent"])
    for agent, (tokens_in, tokens_out, dollars) in sorted(counts.usage.items()):
        tokens.add_metric([agent, "input"], tokens_in)
        tokens.add_metric([agent, "output"], tokens_out)
        cost.add_metric([agent], dollars)
    yield tokens
    yield cost
    task_family = GaugeMetricFamily("flotilla_tasks", "Tasks by state", labels=["state"])
    for task_state in TaskState:
        task_family.add_metric([task_state.value], counts.tasks.get(task_state.value, 0))
    yield task_family
    message_family = GaugeMetricFamily("flotilla_messages", "Messages by state", labels=["state"])
    for message_state in MessageState:
        value = counts.messages.get(message_state.value, 0)
        message_family.add_metric([message_state.value], value)
    yield message_family
    delivered = sum(counts.messages.get(s, 0) for s in _DELIVERED)
    yield CounterMetricFamily(
        "flotilla_message_deliveries", "Messages delivered to their agent", value=delivered
    )
    yield CounterMetricFamily(
        "flotilla_message_delivery_failures",
        "Messages that could not be delivered",
        value=counts.messages.get(MessageState.FAILED.value, 0),
    )


class Metrics:
    """The registry of one daemon, and the in-memory figures it updates."""

    def __init__(self, store: Store, *, bus: Any = None) -> None:
        self.clients = StreamClients()  # counted by the stream routes
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "flotilla_api_requests",
            "API requests, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "flotilla_api_request_duration_seconds",
            "API request duration (streams excluded)",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.worker_seconds = Histogram(
            "flotilla_worker_duration_seconds",
            "How long finished workers ran (start to end), by agent kind and outcome",
            ["agent", "outcome"],
            buckets=WORKER_BUCKETS,
            registry=self.registry,
        )
        head = None if bus is None else (lambda: bus.head)
        self.registry.register(FleetCollector(store, head, self.clients))
        ProcessCollector(namespace="flotilla", registry=self.registry)

    def worker_ended(self, worker: Worker) -> None:
        """For Supervisor.on_worker_end (chained with the daemon's other hooks)."""
        if worker.ended_at is None:
            return
        began = worker.started_at or worker.created_at
        outcome = worker.outcome.value if worker.outcome is not None else "unknown"
        self.worker_seconds.labels(worker.agent, outcome).observe(max(0.0, worker.ended_at - began))

    def observe_request(self, method: str, route: str, status: int, seconds: float | None) -> None:
        self.requests.labels(method, route, str(status)).inc()
        if seconds is not None:
            self.request_seconds.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The text exposition; reads the store, so call it off the event loop."""
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: counts each HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        streaming = False

        async def sending(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = int(message["status"])
                streaming = any(
                    k == b"content-type" and v.startswith(b"text/event-stream")
                    for k, v in message.get("headers", ())
                )
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = None if streaming else time.perf_counter() - started
            self.metrics.observe_request(scope["method"], route_template(scope), status, seconds)


def route_template(scope: Scope) -> str:
    """The matched route's path with its {parameters}, never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def metrics_router(metrics: Metrics) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", dependencies=[Depends(require(Permission.READ))])
    async def scrape() -> Response:
        """Prometheus text format; a monitor token (bearer_token in Prometheus) may read."""
        body = await run_blocking(metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
