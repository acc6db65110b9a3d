"""The daemon process: one per state home, like tmux's server.

Started by the CLI when needed (`python -m flotilla.server.daemon`), or by
`fleet daemon start`, or in the foreground by `fleet serve`, which also serves
the API over TCP. It holds a lock file for its whole life so two never run at
once, serves the API on a Unix socket, and runs the supervisor. Agents run in
their own sessions, so stopping or killing the daemon never stops them; the next
daemon re-adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import uvicorn
import uvloop
from starlette.types import ASGIApp

from flotilla.config.loader import load_config
from flotilla.config.paths import daemon_file, socket_path, state_home
from flotilla.counters import count
from flotilla.domain.states import WorkerState
from flotilla.mcp.http import mcp_running, mount_mcp
from flotilla.orchestrator.agent_env import AgentAccess
from flotilla.orchestrator.creation import undo_worker
from flotilla.orchestrator.delivery_loop import chain
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.supervisor import Supervisor
from flotilla.orchestrator.workflow_engine import engine_for
from flotilla.orchestrator.workflow_runner import WorkflowRunner
from flotilla.server.app import build_app
from flotilla.server.auth import Authority, tag_listener
from flotilla.server.coordination_wiring import CoordinationSide
from flotilla.server.metrics import Metrics
from flotilla.store import open_store
from flotilla.store.base import Store

log = logging.getLogger("flotilla.daemon")


def store_url() -> str:
    """FLOTILLA_DATABASE_URL, else the user config's store.url, else SQLite in the state home."""
    return load_config(None).database_url


def _abandon_unprepared(store: Store) -> None:
    """Rows whose worktree was still being made when a previous daemon died."""
    for worker in store.list_workers(states=[WorkerState.QUEUED]):
        if not worker.worktree:
            count("daemon.abandoned_launch_removed")
            undo_worker(
                worker, made_worktree=bool(worker.settings.get("worktree_path")), store=store
            )


def _bind(path: Path) -> socket.socket:
    if path.exists():
        path.unlink()  # we hold the lock: any socket file here is a dead daemon's
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    return sock


class _Listener(uvicorn.Server):
    """One uvicorn server per listener; signals are the daemon's, handled once for all."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listener(app: ASGIApp) -> _Listener:
    config = uvicorn.Config(
        app,
        http="httptools",  # uvicorn's C parser, not h11
        # Deflate would compress every frame once per subscriber: a quarter of the daemon's
        # CPU when fanning out to 200 (BENCHMARKS.md, "Service").
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,  # a forwarded-for header must never change who a caller is
        timeout_graceful_shutdown=5,
    )
    return _Listener(config)


async def _serve_all(
    listeners: list[tuple[_Listener, socket.socket]], on_stop: Callable[[], None]
) -> None:
    """Serve every listener until one stops (shutdown, signal, failure), then stop the rest.
    `on_stop` ends the long-lived responses (event streams) the servers would wait for."""

    def stop_all() -> None:
        on_stop()
        for server, _ in listeners:
            if server.should_exit:
                server.force_exit = True  # a second Ctrl-C: do not wait for open requests
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in listeners]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        on_stop()
        for server, _ in listeners:
            server.should_exit = True
        await asyncio.gather(*tasks)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve(
    home: Path,
    tmux_socket: str,
    authority: Authority,
    tcp: socket.socket | None = None,
    url: str | None = None,
) -> None:
    """Run the daemon: the API on the Unix socket (and on `tcp` if given), the supervisor
    and the workflow runner, until /shutdown or SIGINT/SIGTERM."""
    store = open_store(store_url())
    store.cache_workers()  # the daemon is the store's one writer: status reads from memory
    _abandon_unprepared(store)
    supervisor: Supervisor | None = None

    def wake() -> None:
        if supervisor is not None:
            supervisor.notify()  # called from the service's worker threads

    service = FleetService(store, home, tmux_socket=tmux_socket, on_change=wake)
    access = AgentAccess.for_store(
        store,
        socket=socket_path(),
        url=url,
        sign=authority.tokens.issue if authority.tokens is not None else None,
    )
    supervisor = Supervisor(
        store, home, max_concurrent=service.max_concurrent, tmux_socket=tmux_socket, access=access
    )
    workflows = WorkflowRunner(engine_for(service))  # workflows advance as workers end
    # bus, messages, teams, checkpoints; the log's retention from the user's [bus]
    side = await CoordinationSide.start(service, retention=load_config(None).config.bus)
    metrics = Metrics(store, bus=side.bus)  # served at /metrics
    supervisor.on_worker_end = chain(
        workflows.worker_ended, side.worker_ended, metrics.worker_ended
    )
    listeners: list[tuple[_Listener, socket.socket]] = []

    def shutdown() -> None:
        metrics.clients.stop()
        for server, _ in listeners:
            server.should_exit = True

    app = build_app(
        service,
        authority,
        on_shutdown=shutdown,
        routers=side.routers(service),
        fast_routes=side.fast_routes(),  # claims, posts: past FastAPI's per-request work
        bus=side.bus,  # the live streams (/ws, /events/stream) and /health's bus
        metrics=metrics,
    )
    mount_mcp(app)  # /mcp: the MCP tools over streamable HTTP, behind the same tokens
    listeners.append((_listener(tag_listener(app, local=True)), _bind(socket_path())))
    if tcp is not None:
        listeners.append((_listener(tag_listener(app, local=False)), tcp))

    stop = asyncio.Event()
    watcher = asyncio.create_task(supervisor.run(stop))
    flows = asyncio.create_task(workflows.run(stop))
    deliveries = asyncio.create_task(side.run(stop))
    try:
        async with mcp_running(app):  # /mcp's session manager, while serving
            await _serve_all(listeners, on_stop=metrics.clients.stop)
    finally:
        stop.set()
        supervisor.wake.set()
        await watcher
        await flows
        await deliveries
        await side.close()
        store.close()
        socket_path().unlink(missing_ok=True)


def setup_logging() -> None:
    home = state_home()
    home.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=daemon_file("log"),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def try_lock() -> TextIO | None:
    """The daemon lock of this state home, held for the daemon's life; None if another has it."""
    state_home().mkdir(parents=True, exist_ok=True)
    lock = daemon_file("lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        count("daemon.already_running")
        lock.close()
        return None
    return lock


def running_info() -> dict[str, Any]:
    """What the running daemon wrote of itself: pid, started_at, url (when it serves TCP)."""
    try:
        info: dict[str, Any] = json.loads(daemon_file("pid").read_text())
    except (OSError, ValueError):
        count("daemon.pid_file_unreadable")
        return {}
    return info


SWITCH_INTERVAL_S = 0.0005


def run_locked(
    lock: TextIO, authority: Authority, tcp: socket.socket | None = None, url: str | None = None
) -> int:
    """Be the daemon of this state home (the caller holds its lock) until stopped."""
    pid_file = daemon_file("pid")
    pid_file.write_text(json.dumps({"pid": os.getpid(), "started_at": time.time(), "url": url}))
    tmux_socket = os.environ.get("FLOTILLA_TMUX_SOCKET", "flotilla")
    # A store thread that finished its statement waits for the GIL until the event loop
    # lets go of it, by default up to 5 ms each time: for a batch of writes, one such
    # wait per statement. 0.5 ms keeps those hand-offs short.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        # uvloop: socket writes, timers and thread wake-ups in C.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(state_home(), tmux_socket, authority, tcp, url=url))
    finally:
        pid_file.unlink(missing_ok=True)
        lock.close()
    return 0


def main() -> int:
    setup_logging()
    lock = try_lock()
    if lock is None:
        print("a flotilla daemon is already running for this state home", file=sys.stderr)
        return 0
    return run_locked(lock, Authority.tolerant(state_home(), os.environ))


if __name__ == "__main__":
    sys.exit(main())
