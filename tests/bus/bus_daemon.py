"""A daemon built in the test process: the real store, FleetService, Supervisor, bus,
MessageService and delivery loop, with an app of the message routes served by real
uvicorn on the state home's Unix socket (where the `fleet` CLI looks) and on a free
127.0.0.1 port. Used until server/app.py and daemon.py include the message routes.
"""

from __future__ import annotations

import asyncio
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
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from flotilla.bus.inprocess import InProcessTransport
from flotilla.config.paths import socket_path
from flotilla.domain.errors import FlotillaError, NotFound
from flotilla.domain.roles import Permission
from flotilla.orchestrator.delivery_loop import DeliveryLoop
from flotilla.orchestrator.messaging import MessageService
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.supervisor import Supervisor
from flotilla.server.apikeys import ApiKeys
from flotilla.server.auth import Authority, install_auth, require, tag_listener
from flotilla.server.routes_messages import message_router
from flotilla.store import SqlStore, open_store
from flotilla.store.bus_sql import bus_store

START_TIMEOUT_S = 20.0


@dataclass
class InProcessDaemon:
    store: SqlStore
    service: FleetService
    messages: MessageService
    bus: InProcessTransport
    delivery: DeliveryLoop
    url: str  # the TCP listener
    loop: asyncio.AbstractEventLoop


def build_test_app(messages: MessageService, authority: Authority) -> FastAPI:
    app = FastAPI()
    install_auth(app, authority)

    @app.exception_handler(FlotillaError)
    async def flotilla_error(_: Request, exc: FlotillaError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else (400 if exc.exit_code == 2 else 500)
        return JSONResponse({"error": str(exc), "exit_code": exc.exit_code}, status_code=status)

    @app.get("/health", dependencies=[Depends(require(Permission.READ))])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(message_router(messages))
    return app


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not the main thread
        return None


def _server(app: Any) -> _Server:
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    return _Server(config)


@contextmanager
def running_daemon(
    home: Path,
    tmux_socket: str,
    *,
    delivery_interval_s: float = 0.3,
    authority: Authority | None = None,
    supervise: bool = True,
) -> Iterator[InProcessDaemon]:
    """The daemon on a thread of its own; `supervise=False` leaves worker rows alone (for
    tests that make rows without agent processes)."""
    home.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{home / 'state.db'}")
    assert isinstance(store, SqlStore)
    ready: dict[str, Any] = {}
    stop_requested = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        supervisor: Supervisor | None = None

        def wake() -> None:
            if supervisor is not None:
                supervisor.notify()

        service = FleetService(store, home, tmux_socket=tmux_socket, on_change=wake)
        supervisor = Supervisor(
            store, home, max_concurrent=service.max_concurrent, tmux_socket=tmux_socket
        )
        bus = InProcessTransport(bus_store(store), poll_s=0.5)
        await bus.start()
        messages = MessageService(store, service, bus)
        delivery = DeliveryLoop(messages, interval_s=delivery_interval_s, bus=bus)
        supervisor.on_worker_end = delivery.worker_ended
        trusted = Authority(tokens=None, api_keys=ApiKeys.at(home), tcp_auth=False)
        app = build_test_app(messages, authority or trusted)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = socket_path({"FLOTILLA_HOME": str(home)})
        path.unlink(missing_ok=True)
        unix.bind(str(path))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        servers = [
            (_server(tag_listener(app, local=True)), unix),
            (_server(tag_listener(app, local=False)), tcp),
        ]
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(delivery.run(stop)),
            *(asyncio.create_task(s.serve(sockets=[sock])) for s, sock in servers),
        ]
        if supervise:
            tasks.append(asyncio.create_task(supervisor.run(stop)))
        ready["daemon"] = InProcessDaemon(
            store, service, messages, bus, delivery, f"http://127.0.0.1:{port}", loop
        )
        while not stop_requested.is_set():
            await asyncio.sleep(0.05)
        stop.set()
        supervisor.wake.set()
        for server, _ in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)
        await bus.close()
        path.unlink(missing_ok=True)

    runner = ThreadPoolExecutor(1, thread_name_prefix="test-daemon")
    done = runner.submit(asyncio.run, main())
    deadline = time.monotonic() + START_TIMEOUT_S
    while "daemon" not in ready and not done.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    if "daemon" not in ready:
        stop_requested.set()
        done.result(timeout=30)  # raises what stopped it
        raise AssertionError("the test daemon did not start")
    try:
        yield ready["daemon"]
    finally:
        stop_requested.set()
        try:
            done.result(timeout=30)
        finally:
            runner.shutdown()
            store.close()
