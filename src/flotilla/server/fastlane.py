"""The fast lane: the agents' most frequent calls answered without FastAPI's per-request
machinery.

A task claim, a blackboard post or a worker's status costs well under a millisecond of
real work, and FastAPI's middleware stack, routing (each route tried in turn),
dependency solving and parameter parsing cost about as much again (BENCHMARKS.md,
"Service"). This layer, in front of the whole app, answers those few routes itself
when a request is well formed and allowed:

- the route is found by method and a compiled pattern of the route's own path;
- the body is within the edge guard's limit for the route (server/limits.py) and
  validates against the route's own model;
- the caller comes from its bearer token (or is the local socket's user) and its role
  must have the permission that the FastAPI route itself declares;
- the answer is the function the FastAPI route calls too, so both give the same result,
  and the request is counted in the request metrics as the route would be.

Anything else goes to the app unchanged, body and all: no token, a refused role, an
invalid or oversized body, and any refusal the answer raises (FlotillaError, AuthError)
— those are raised before anything is written, or by a write that was rolled back, so
the app answering them again gives the API's one error format. The fast lane answers 200,
or 500 (counted) if the answer fails for any other reason.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from flotilla.counters import count
from flotilla.domain.errors import FlotillaError
from flotilla.domain.roles import Permission, allowed
from flotilla.server.auth import LOCAL, AuthError, Authority, Principal, api_routes, is_local
from flotilla.server.auth import route_permission as declared_permission
from flotilla.server.limits import BodyLimits, replay

log = logging.getLogger(__name__)

# (caller, path parameters, query parameters, validated body or None) -> the answer
Answer = Callable[[Principal, dict[str, str], dict[str, str], Any], Awaitable[Any]]


class RequestObserver(Protocol):
    """Where answered requests are counted (server/metrics.py's Metrics)."""

    def observe_request(
        self, method: str, route: str, status: int, seconds: float | None
    ) -> None: ...


class Decline(Exception):
    """The fast lane will not answer this request: FastAPI will."""


@dataclass(frozen=True)
class FastRoute:
    method: str
    path: str  # the FastAPI route's path template, e.g. "/swarms/{swarm}/posts"
    answer: Answer
    body: type[BaseModel] | None = None


@dataclass(frozen=True)
class _Compiled:
    route: FastRoute
    pattern: re.Pattern[str]
    permission: Permission


def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", path)  # literal, name, literal, name, ...
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


def compile_routes(app: FastAPI, routes: Sequence[FastRoute]) -> dict[str, list[_Compiled]]:
    """Each fast route with the permission its FastAPI route declares (it must have one)."""
    declared = {
        (method, path): declared_permission(route)
        for path, route in api_routes(app)
        for method in route.methods or ()
    }
    compiled: dict[str, list[_Compiled]] = {}
    for route in routes:
        permission = declared.get((route.method, route.path))
        if permission is None:
            raise RuntimeError(f"fast route {route.method} {route.path}: no guarded API route")
        entry = _Compiled(route, _pattern(route.path), permission)
        compiled.setdefault(route.method, []).append(entry)
    return compiled


class FastLane:
    """ASGI middleware; see the module doc."""

    def __init__(
        self,
        app: ASGIApp,
        authority: Authority,
        lane: dict[str, list[_Compiled]],
        metrics: RequestObserver,
        limits: BodyLimits,
    ) -> None:
        self.app = app
        self.authority = authority
        self.lane = lane
        self.metrics = metrics
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        candidates = self.lane.get(scope.get("method", "")) if scope["type"] == "http" else None
        if not candidates:
            await self.app(scope, receive, send)
            return
        for entry in candidates:
            found = entry.pattern.match(scope["path"])
            if found is not None:
                await self._answer(entry, found.groupdict(), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, entry: _Compiled, params: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        if entry.route.body is not None and not self._small(scope, entry):
            await self.app(scope, receive, send)  # the edge guard refuses it (413, 411)
            return
        try:
            body = await _read_body(receive) if entry.route.body is not None else b""
        except Decline:  # the client went away while sending: nobody to answer
            count("fastlane.client_gone")
            return
        try:
            principal = self._principal(scope)
            if not allowed(principal.role, entry.permission):
                raise Decline
            model = None if entry.route.body is None else entry.route.body.model_validate_json(body)
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            result = await entry.route.answer(principal, params, query, model)
        except (Decline, AuthError, ValidationError, FlotillaError):
            count("fastlane.handed_to_fastapi")  # which answers (or refuses) it
            await self.app(scope, replay(body, receive), send)
            return
        except Exception:  # a bug: say so as the app would, never run the write twice
            count("fastlane.failed")
            log.exception("the fast lane failed on %s %s", scope["method"], scope["path"])
            await _reply(send, 500, {"error": "internal error: see the daemon's log"})
            self._observe(scope, entry, 500, started)
            return
        await _reply(send, 200, result)
        self._observe(scope, entry, 200, started)

    def _observe(self, scope: Scope, entry: _Compiled, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        self.metrics.observe_request(scope["method"], entry.route.path, status, seconds)

    def _small(self, scope: Scope, entry: _Compiled) -> bool:
        """A declared length within the route's limit (a chunked body: the edge guard's)."""
        for key, value in scope["headers"]:
            if key == b"content-length":
                limit = self.limits.for_request(entry.route.method, entry.route.path)
                return value.isdigit() and int(value) <= limit
        return False

    def _principal(self, scope: Scope) -> Principal:
        token = _bearer(scope)
        if token is None:
            if is_local(scope) or not self.authority.tcp_auth:
                return LOCAL
            raise Decline
        principal: Principal = self.authority.require_tokens().verify(token)
        return principal


async def _reply(send: Send, status: int, value: Any) -> None:
    payload = orjson.dumps(value)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _bearer(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:  # until the last chunk (the edge guard has bounded the body already)
        message = await receive()
        if message["type"] != "http.request":
            raise Decline
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def install_fast_lane(
    app: FastAPI,
    authority: Authority,
    routes: Sequence[FastRoute],
    metrics: RequestObserver,
    limits: BodyLimits,
) -> None:
    """Put the fast lane in front of the app's middleware stack (Starlette builds that on
    the first request). Call it once every route is in: each fast route takes the
    permission of its API route."""
    lane = compile_routes(app, routes)
    build_stack = app.build_middleware_stack

    def with_fast_lane() -> ASGIApp:
        return FastLane(build_stack(), authority, lane, metrics, limits)

    app.build_middleware_stack = with_fast_lane  # type: ignore[method-assign]


def query_of(query: Mapping[str, str], name: str) -> str:
    """A required query parameter, or Decline (FastAPI then says what is missing)."""
    value = query.get(name)
    if value is None:
        raise Decline
    return value
