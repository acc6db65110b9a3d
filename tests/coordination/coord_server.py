"""A real service in the test process: the daemon's app (build_app) with the coordination
router included, served by uvicorn on a free 127.0.0.1 port (as TCP callers see it) and on
the state home's Unix socket (as the `fleet` CLI sees it), with a real supervisor running
the agents. Everything runs on one event loop in a background thread."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flotilla.config.paths import socket_path
from flotilla.domain.roles import Role
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.supervisor import Supervisor
from flotilla.server.apikeys import ApiKeys
from flotilla.server.app import build_app
from flotilla.server.auth import Authority, Tokens, tag_listener, unguarded_routes
from flotilla.server.routes_coordination import coordination_router
from flotilla.store import open_store

SECRET = "coordination-tests-secret-0123456789"
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Served:
    url: str
    env: dict[str, str]  # for `fleet` subprocesses: the same state home, hence the socket
    service: FleetService
    tokens: Tokens

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def token(self, agent: str, team: str, role: str) -> str:
        token, _ = self.tokens.issue(agent, team, Role(role), 600)
        return token

    def wait_worker(
        self,
        client: httpx.Client,
        project: str,
        name: str,
        done: Callable[[dict[str, Any]], bool] = lambda w: w["state"] in TERMINAL,
        timeout: float = 60,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        worker: dict[str, Any] = {}
        while time.monotonic() < deadline:
            answer = client.get(f"/workers/{name}", params={"project": project})
            if answer.status_code == 200:
                worker = answer.json()
                if done(worker):
                    return worker
            time.sleep(0.1)
        raise AssertionError(f"worker {name} did not finish in {timeout:g}s: {worker}")


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # not the main thread: the test runner owns the signals


def _server(app: Any) -> _Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return _Server(config)


@contextmanager
def serving(tmp_path: Path, env: dict[str, str]) -> Iterator[Served]:
    home = Path(env["FLOTILLA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{home / 'flotilla.db'}")
    tmux_socket = f"flotilla-coord-{os.getpid()}-{tmp_path.name}"
    supervisor = Supervisor(store, home, max_concurrent=lambda _: 8, tmux_socket=tmux_socket)
    service = FleetService(store, home, tmux_socket=tmux_socket, on_change=supervisor.notify)
    supervisor.max_concurrent = service.max_concurrent
    tokens = Tokens(SECRET)
    app = build_app(service, Authority(tokens, ApiKeys.at(home), "test", tcp_auth=True))
    app.include_router(coordination_router(service))
    assert unguarded_routes(app) == []

    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    unix_path = socket_path(env)
    unix_path.unlink(missing_ok=True)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(unix_path))
    servers = [
        (_server(tag_listener(app, local=False)), tcp),
        (_server(tag_listener(app, local=True)), unix),
    ]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        watcher = asyncio.create_task(supervisor.run(stop))
        await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in servers))
        stop.set()
        supervisor.wake.set()
        await watcher

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not all(server.started for server, _ in servers):
        assert time.monotonic() < deadline, "the test service did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", env, service, tokens)
    finally:
        for worker in store.list_workers():
            if worker.state.value not in TERMINAL:
                service.kill(worker)
        for server, _ in servers:
            server.should_exit = True
        thread.join(timeout=30)
        loop.close()
        unix_path.unlink(missing_ok=True)
        store.close()
