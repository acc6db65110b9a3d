"""A real `fleet serve` (the daemon as users run it: Unix socket + TCP on a free 127.0.0.1
port, auth on) over a repository whose agent is the scripted one, and WebSocket/SSE
client helpers for the stream tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from e2e_support import FLEET, make_repo
from websockets.asyncio.client import ClientConnection, connect

START_TIMEOUT_S = 40.0
FRAME_TIMEOUT_S = 30.0

# Three transcript lines a few tenths of a second apart, tokens and cost, then a result;
# a follow-up prompt (a message delivered as a turn) answers in one line.
SCRIPT = """
[[steps]]
action = "say"
text = "line one"
[[steps]]
action = "sleep"
seconds = 0.4
[[steps]]
action = "say"
text = "line two"
[[steps]]
action = "sleep"
seconds = 0.4
[[steps]]
action = "usage"
input_tokens = 1200
output_tokens = 340
cost_usd = 0.0125
[[steps]]
action = "say"
text = "line three"
[[on_prompt]]
action = "say"
text = "got {prompt}"
"""


@dataclass
class Daemon:
    repo: Path
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    output: Path
    port: int = 0  # read from what `fleet serve --port 0` prints

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def local(self) -> httpx.Client:
        """The CLI's way in: the Unix socket, trusted, no token."""
        transport = httpx.HTTPTransport(uds=str(self.home / "daemon.sock"))
        return httpx.Client(transport=transport, base_url="http://flotilla", timeout=30)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def token(self, role: str, agent: str = "tester") -> str:
        secret = (self.home / "secret").read_text().strip()
        body = {"secret": secret, "agent": agent, "role": role, "ttl_s": 600}
        with self.http() as client:
            answer = client.post("/auth", json=body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.local() as client:
            answer = client.request(method, path, **kwargs)
        assert answer.status_code == 200, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def create_worker(self, name: str) -> dict[str, Any]:
        body = {"project": str(self.repo), "name": name, "prompt": "stream test"}
        return dict(self.call("POST", "/workers", json=body))

    def wait_worker(self, name: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            found = self.call("GET", f"/workers/{name}", params={"project": str(self.repo)})
            return found if found["state"] in states else None

        found: dict[str, Any] = wait_for(done, f"{name} to be {states}", timeout)
        return found

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def daemon_env(root: Path) -> dict[str, str]:
    """A private state home, tmux socket and git configuration for the daemon and agents."""
    home = root / "user"
    home.mkdir()
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    drop = ("FLOTILLA_", "GIT_", "TMUX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test User",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test User",
            "GIT_COMMITTER_EMAIL": "test@example.com",
            "FLOTILLA_HOME": str(root / "home"),
            "FLOTILLA_USER_CONFIG": str(root / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-streams-{os.getpid()}-{root.name}",
        }
    )
    return env


def scripted_repo(root: Path) -> Path:
    repo = make_repo(root / "repo").resolve()
    script = root / "agent.toml"
    script.write_text(SCRIPT)
    (repo / ".flotilla").mkdir()
    (repo / ".flotilla" / "config.toml").write_text(
        f'[project]\ndefault_agent = "scripted"\n[agents.scripted]\nscript = "{script}"\n'
    )
    return repo


@contextmanager
def serving(root: Path) -> Iterator[Daemon]:
    env = daemon_env(root)
    repo = scripted_repo(root)
    output = root / "serve.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "serve", "--port", "0"],
            cwd=repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    daemon = Daemon(repo, Path(env["FLOTILLA_HOME"]), env, proc, output)
    try:
        _wait_up(daemon)
        yield daemon
    finally:
        _stop(daemon)


def _wait_up(daemon: Daemon) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"fleet serve exited: {daemon.log_text()}")
        serving = re.search(r"serving http://127\.0\.0\.1:(\d+)", daemon.log_text())
        if serving:
            daemon.port = int(serving.group(1))
            try:
                with daemon.http() as client:
                    client.get("/health")
                return
            except httpx.TransportError:
                pass  # printed, not yet accepting
        time.sleep(0.05)
    raise AssertionError(f"fleet serve did not start in {START_TIMEOUT_S:g}s: {daemon.log_text()}")


def _stop(daemon: Daemon) -> None:
    if daemon.proc.poll() is None:
        for worker in daemon.call("GET", "/workers"):
            if worker["state"] not in ("succeeded", "failed", "cancelled"):
                with daemon.local() as client:
                    client.delete(
                        f"/workers/{worker['name']}", params={"project": worker["project"]}
                    )
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)
    subprocess.run(
        ["tmux", "-L", daemon.env["FLOTILLA_TMUX_SOCKET"], "kill-server"],
        capture_output=True,
        check=False,
    )


# -- stream clients -----------------------------------------------------------------------


def query(**params: Any) -> str:
    given = {k: str(v) for k, v in params.items() if v is not None}
    return "?" + "&".join(f"{k}={v}" for k, v in given.items()) if given else ""


def ws_connect(daemon: Daemon, **params: Any) -> Any:
    return connect(daemon.ws_url + query(**params), open_timeout=20, close_timeout=5)


async def frame(ws: ClientConnection, timeout: float = FRAME_TIMEOUT_S) -> dict[str, Any]:
    text = await asyncio.wait_for(ws.recv(), timeout)
    found: dict[str, Any] = json.loads(text)
    return found


async def events_until(
    ws: ClientConnection,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = FRAME_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Event frames (control frames skipped) until `done(events so far)`."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(events):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; got {json.dumps(events)[:2000]}")
        received = await frame(ws, left)
        if "kind" in received:
            events.append(received)
    return events


def sse_events(lines: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """(id, data) of each event in SSE text lines; comments and retry skipped."""
    found = []
    current: int | None = None
    for line in lines:
        if line.startswith("id: "):
            current = int(line[4:])
        elif line.startswith("data: "):
            assert current is not None, lines
            found.append((current, json.loads(line[6:])))
            current = None
    return found
