"""The CLI's way to the daemon: HTTP over its Unix socket, starting it when needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from flotilla.config.paths import daemon_file, socket_path, state_home
from flotilla.counters import count
from flotilla.domain.errors import FlotillaError, NotFound, OperationFailed, UsageError

START_TIMEOUT_S = 20.0


class DaemonClient:
    def __init__(self, env: Mapping[str, str] | None = None, timeout: float = 3600.0) -> None:
        self.env = dict(os.environ if env is None else env)
        self.home = state_home(self.env)
        self.socket = socket_path(self.env)
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url="http://flotilla",
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    # -- lifecycle -------------------------------------------------------------

    def is_running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self._http.get("/health", timeout=5).status_code == 200
        except httpx.TransportError:
            count("client.daemon_unreachable")
            return False

    def ensure_running(self) -> None:
        if self.is_running():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        with daemon_file("log", self.env).open("ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "flotilla.server.daemon"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.is_running():
                return
            time.sleep(0.05)
        raise OperationFailed(
            f"the flotilla daemon did not start within {START_TIMEOUT_S:g}s: "
            f"see {daemon_file('log', self.env)}"
        )

    def daemon_pid(self) -> int | None:
        path = daemon_file("pid", self.env)
        if not path.exists():
            return None
        pid: int = json.loads(path.read_text())["pid"]
        return pid

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the daemon (agents keep running). Returns whether one was running."""
        pid = self.daemon_pid()
        if not self.is_running() and pid is None:
            return False
        try:
            self._http.post("/shutdown", timeout=5)
        except httpx.TransportError:
            count("client.shutdown_unreachable")
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    count("client.daemon_pid_stale")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not daemon_file("pid", self.env).exists():
                return True
            time.sleep(0.05)
        raise OperationFailed(f"the daemon (pid {pid}) did not stop within {timeout:g}s")

    # -- requests ----------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.ensure_running()
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.text
            except json.JSONDecodeError:
                count("client.error_not_json")
                message = response.text
            if isinstance(message, list | dict):
                message = json.dumps(message)
            if response.status_code == 404:
                raise NotFound(str(message))
            if response.status_code < 500:
                raise UsageError(str(message))
            raise FlotillaError(str(message))
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text


def project_params(project: Path) -> dict[str, str]:
    return {"project": str(project)}
