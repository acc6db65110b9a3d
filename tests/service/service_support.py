"""A real `fleet serve` on a free 127.0.0.1 port, as a subprocess with a private state home."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from e2e_support import FLEET, Fleet, free_port

START_TIMEOUT_S = 30.0


@dataclass
class Served:
    fleet: Fleet
    proc: subprocess.Popen[bytes]
    url: str
    output: Path  # the serve process's stdout and stderr

    @property
    def secret(self) -> str:
        return (self.fleet.home / "secret").read_text().strip()

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def local(self) -> httpx.Client:
        """The CLI's way in: the Unix socket, no token."""
        transport = httpx.HTTPTransport(uds=str(self.fleet.home / "daemon.sock"))
        return httpx.Client(transport=transport, base_url="http://flotilla", timeout=30)

    def token(self, role: str, agent: str = "tester", ttl_s: int = 600) -> str:
        body = {"secret": self.secret, "agent": agent, "role": role, "ttl_s": ttl_s}
        with self.http() as client:
            answer = client.post("/auth", json=body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def text(self) -> str:
        return self.output.read_text(errors="replace")


def start_serve(fleet: Fleet, *args: str, port: int | None = None) -> tuple[Served, int]:
    port = free_port() if port is None else port
    output = fleet.home.parent / f"serve-{port}.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "serve", "--port", str(port), *args],
            cwd=fleet.repo,
            env=fleet.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(fleet, proc, f"http://127.0.0.1:{port}", output)
    _wait_up(served)
    return served, port


def _wait_up(served: Served) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise AssertionError(f"fleet serve exited {served.proc.returncode}: {served.text()}")
        if "serving http://" in served.text():
            try:
                with served.http() as client:
                    client.get("/health")
                return
            except httpx.TransportError:
                pass  # printed, not yet accepting
        time.sleep(0.05)
    served.stop(signal.SIGKILL)
    raise AssertionError(f"fleet serve did not start in {START_TIMEOUT_S:g}s: {served.text()}")


@contextmanager
def serving(fleet: Fleet, *args: str) -> Iterator[Served]:
    served, _ = start_serve(fleet, *args)
    try:
        yield served
    finally:
        served.stop()


def pid_info(fleet: Fleet) -> dict[str, Any]:
    path = fleet.home / "daemon.pid"
    return json.loads(path.read_text()) if path.exists() else {}
