"""The daemon in the test process, wired as server/daemon.py wires it (store, FleetService,
Supervisor, the coordination side with its routes), plus /mcp: mount_mcp and mcp_running
(until app.py and daemon.py do it themselves). Served by real uvicorn on a free
127.0.0.1 port (auth on) and on the state home's Unix socket, on one event loop in a
thread of its own."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from flotilla.config.paths import socket_path
from flotilla.domain.roles import Role
from flotilla.mcp.http import PATH, mcp_running, mount_mcp
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.supervisor import Supervisor
from flotilla.server.apikeys import ApiKeys
from flotilla.server.app import build_app
from flotilla.server.auth import Authority, Tokens, api_routes, tag_listener
from flotilla.server.coordination_wiring import CoordinationSide
from flotilla.store import open_store

SECRET = "mcp-tests-secret-0123456789abcdef"
TERMINAL = {"succeeded", "failed", "cancelled"}
START_TIMEOUT_S = 20.0


@dataclass
class Service:
    url: str  # TCP, where a token is needed
    socket: Path  # the Unix socket, where the caller is the local user
    app: FastAPI
    tokens: Tokens

    def token(self, role: str, agent: str = "tester", team: str = "default") -> str:
        token, _ = self.tokens.issue(agent, team, Role(role), 600)
        return token

    def serves(self, method: str, path: str) -> bool:
        return any(
            p == path and method in (route.methods or ()) for p, route in api_routes(self.app)
        )


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # not the main thread: the test runner owns the signals


def _server(app: Any) -> _Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return _Server(config)


@contextmanager
def mcp_service(tmp_path: Path, env: dict[str, str]) -> Iterator[Service]:
    home = Path(env["FLOTILLA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{home / 'flotilla.db'}")
    tmux_socket = f"flotilla-mcp-{os.getpid()}-{tmp_path.name}"
    tokens = Tokens(SECRET)
    ready: dict[str, Any] = {}
    stop_requested = threading.Event()

    async def main() -> None:
        supervisor = Supervisor(store, home, max_concurrent=lambda _: 8, tmux_socket=tmux_socket)
        service = FleetService(store, home, tmux_socket=tmux_socket, on_change=supervisor.notify)
        supervisor.max_concurrent = service.max_concurrent
        side = await CoordinationSide.start(service)
        supervisor.on_worker_end = side.worker_ended
        authority = Authority(tokens, ApiKeys.at(home), "test", tcp_auth=True)
        app = build_app(
            service, authority, routers=side.routers(service), fast_routes=side.fast_routes()
        )
        if not any(getattr(route, "path", None) == PATH for route in app.routes):
            mount_mcp(app)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        unix_path = socket_path(env)
        unix_path.unlink(missing_ok=True)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(str(unix_path))
        servers = [
            (_server(tag_listener(app, local=False)), tcp),
            (_server(tag_listener(app, local=True)), unix),
        ]
        stop = asyncio.Event()
        async with mcp_running(app):
            tasks = [
                asyncio.create_task(supervisor.run(stop)),
                asyncio.create_task(side.run(stop)),
                *(asyncio.create_task(s.serve(sockets=[sock])) for s, sock in servers),
            ]
            while not all(s.started for s, _ in servers):
                await asyncio.sleep(0.02)
            port = tcp.getsockname()[1]
            ready["service"] = Service(f"http://127.0.0.1:{port}", unix_path, app, tokens)
            while not stop_requested.is_set():
                await asyncio.sleep(0.05)
            for worker in store.list_workers():
                if worker.state.value not in TERMINAL:
                    await asyncio.to_thread(service.kill, worker)
            stop.set()
            supervisor.wake.set()
            for server, _ in servers:
                server.should_exit = True
            await asyncio.gather(*tasks)
        await side.close()
        unix_path.unlink(missing_ok=True)

    runner = ThreadPoolExecutor(1, thread_name_prefix="mcp-test-daemon")
    done = runner.submit(asyncio.run, main())
    deadline = time.monotonic() + START_TIMEOUT_S
    while "service" not in ready and not done.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        if "service" not in ready:
            stop_requested.set()
            done.result(timeout=30)  # raises what stopped it
            raise AssertionError("the test daemon did not start")
        yield ready["service"]
    finally:
        stop_requested.set()
        try:
            done.result(timeout=60)
        finally:
            runner.shutdown()
            store.close()
