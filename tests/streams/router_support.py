"""The stream routes alone on a real uvicorn (a free 127.0.0.1 port, in the test's event
loop) over a real SQLite event log and the in-process bus, with auth on: what the
router tests share."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from streams_support import frame
from websockets.asyncio.client import ClientConnection, connect

from flotilla.bus.inprocess import InProcessTransport
from flotilla.domain.errors import NotFound
from flotilla.domain.roles import Role
from flotilla.domain.worker import Worker
from flotilla.server.apikeys import ApiKeys
from flotilla.server.auth import Authority, Tokens, install_auth, tag_listener
from flotilla.server.routes_stream import StreamClients, stream_router
from flotilla.store import SqlStore, open_store
from flotilla.store.bus_sql import bus_store

HEARTBEAT_S = 0.3


@dataclass
class Served:
    url: str
    bus: InProcessTransport
    clients: StreamClients
    token: str
    run_dir: Path
    store: SqlStore

    def ws(self, **params: Any) -> Any:
        given = {"token": self.token, **params}
        text = "&".join(f"{k}={v}" for k, v in given.items())
        return connect(f"{self.url.replace('http', 'ws')}/ws?{text}", open_timeout=10)


@asynccontextmanager
async def serve_streams(tmp_path: Path) -> AsyncIterator[Served]:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    assert isinstance(store, SqlStore)
    bus = InProcessTransport(bus_store(store), poll_s=0.2)
    await bus.start()
    run_dir = tmp_path / "w1"
    run_dir.mkdir()
    known = Worker(
        id="w-1", name="one", project="/p", agent="scripted", prompt="hi", run_dir=str(run_dir)
    )

    def lookup(worker_id: str) -> Worker:
        if worker_id != known.id:
            raise NotFound(f"no worker {worker_id}")
        return known

    tokens = Tokens("s" * 32)
    app = FastAPI()
    install_auth(app, Authority(tokens, ApiKeys.at(tmp_path)))
    clients = StreamClients()
    app.include_router(
        stream_router(
            bus, workers=lookup, clients=clients, heartbeat_s=HEARTBEAT_S, log_poll_s=0.05
        )
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(tag_listener(app, local=False), lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    token, _ = tokens.issue("watcher", "default", Role.MONITOR, 600)
    try:
        yield Served(f"http://127.0.0.1:{port}", bus, clients, token, run_dir, store)
    finally:
        server.should_exit = True
        await serving
        await bus.close()
        store.close()


async def reply(ws: ClientConnection) -> dict[str, Any]:
    """The next frame that is not a heartbeat (one may come first on a slow machine)."""
    while True:
        got = await frame(ws)
        if "ping" not in got:
            return got
