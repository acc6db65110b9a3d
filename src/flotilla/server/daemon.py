"""The daemon process: one per state home, like tmux's server.

Started by the CLI when needed (`python -m flotilla.server.daemon`), or by
`fleet daemon start`. It holds a lock file for its whole life so two never run
at once, serves the API on a Unix socket, and runs the supervisor. Agents run in
their own sessions, so stopping or killing the daemon never stops them; the next
daemon re-adopts them.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

import uvicorn

from flotilla.config.loader import load_config
from flotilla.config.paths import daemon_file, socket_path, state_home
from flotilla.counters import count
from flotilla.domain.states import WorkerState
from flotilla.orchestrator.creation import undo_worker
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.supervisor import Supervisor
from flotilla.orchestrator.workflow_engine import engine_for
from flotilla.orchestrator.workflow_runner import WorkflowRunner
from flotilla.server.app import build_app
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


async def serve(home: Path, tmux_socket: str) -> None:
    store = open_store(store_url())
    _abandon_unprepared(store)
    supervisor: Supervisor | None = None

    def wake() -> None:
        if supervisor is not None:
            supervisor.notify()  # called from the service's worker threads

    service = FleetService(store, home, tmux_socket=tmux_socket, on_change=wake)
    supervisor = Supervisor(
        store, home, max_concurrent=service.max_concurrent, tmux_socket=tmux_socket
    )
    workflows = WorkflowRunner(engine_for(service))  # workflows advance as workers end
    supervisor.on_worker_end = workflows.worker_ended
    app = build_app(service)
    sock = _bind(socket_path())
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)

    @app.post("/shutdown")
    async def shutdown() -> dict[str, str]:
        server.should_exit = True
        return {"status": "stopping"}

    stop = asyncio.Event()
    watcher = asyncio.create_task(supervisor.run(stop))
    flows = asyncio.create_task(workflows.run(stop))
    try:
        await server.serve(sockets=[sock])
    finally:
        stop.set()
        supervisor.wake.set()
        await watcher
        await flows
        store.close()
        socket_path().unlink(missing_ok=True)


def main() -> int:
    home = state_home()
    home.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=daemon_file("log"),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    lock = daemon_file("lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        count("daemon.already_running")
        print("a flotilla daemon is already running for this state home", file=sys.stderr)
        return 0
    pid_file = daemon_file("pid")
    pid_file.write_text(json.dumps({"pid": os.getpid(), "started_at": time.time()}))
    tmux_socket = os.environ.get("FLOTILLA_TMUX_SOCKET", "flotilla")
    try:
        asyncio.run(serve(home, tmux_socket))
    finally:
        pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
