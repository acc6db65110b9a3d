"""The daemon's API in the test process, as daemon.py assembles it: build_app with the
CoordinationSide's routers (tasks among them), its loops running (message delivery and
the lease sweep), served by real uvicorn on a free 127.0.0.1 port with auth on. The store
is SQLite or PostgreSQL, by URL. Everything runs on one event loop in a thread."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flotilla.domain.roles import Role
from flotilla.orchestrator.service import FleetService
from flotilla.server.apikeys import ApiKeys
from flotilla.server.app import build_app
from flotilla.server.auth import Authority, Tokens, tag_listener, unguarded_routes
from flotilla.server.coordination_wiring import CoordinationSide
from flotilla.store import open_store

SECRET = "tasks-api-tests-secret-0123456789"
START_TIMEOUT_S = 20.0


@dataclass
class TaskApi:
    url: str
    tokens: Tokens
    side: CoordinationSide

    def token(self, agent: str, team: str, role: str) -> str:
        token, _ = self.tokens.issue(agent, team, Role(role), 600)
        return token

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def as_(self, agent: str, team: str, role: str) -> httpx.Client:
        return self.http(self.token(agent, team, role))


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # not the main thread: the test runner owns the signals


@contextmanager
def serving_tasks(
    tmp_path: Path, store_url: str, *, lease_sweep_s: float = 0.2
) -> Iterator[TaskApi]:
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    store = open_store(store_url)
    service = FleetService(store, home, tmux_socket=f"flotilla-tasks-{os.getpid()}")
    tokens = Tokens(SECRET)
    authority = Authority(tokens, ApiKeys.at(home), "test", tcp_auth=True)
    tcp = socket.create_server(("127.0.0.1", 0))
    # Accepted connections inherit it; asyncio sets it itself only on sockets made with
    # proto IPPROTO_TCP (create_server's is 0): without it each answer waits ~40 ms.
    tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = tcp.getsockname()[1]
    ready: dict[str, Any] = {}
    loop = asyncio.new_event_loop()

    async def main() -> None:
        side = await CoordinationSide.start(service, lease_sweep_s=lease_sweep_s)
        app = build_app(
            service, authority, routers=side.routers(service), fast_routes=side.fast_routes()
        )
        assert unguarded_routes(app) == []
        config = uvicorn.Config(
            tag_listener(app, local=False), log_level="warning", access_log=False, lifespan="off"
        )
        server = _Server(config)
        stop = asyncio.Event()
        loops = asyncio.create_task(side.run(stop))
        ready["side"], ready["server"] = side, server
        try:
            await server.serve(sockets=[tcp])
        finally:
            stop.set()
            await loops
            await side.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (ready.get("server") and ready["server"].started):
        assert thread.is_alive(), "the test service stopped while starting"
        assert time.monotonic() < deadline, "the test service did not start"
        time.sleep(0.02)
    try:
        yield TaskApi(f"http://127.0.0.1:{port}", tokens, ready["side"])
    finally:
        ready["server"].should_exit = True
        thread.join(timeout=30)
        loop.close()
        store.close()
