"""A real `fleet serve` (auth on) on a free 127.0.0.1 port, with a private state home, for
the API contract tests; and a count of every row its store holds."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from e2e_support import FLEET, free_port, make_repo, stop_process

START_TIMEOUT_S = 30.0
SECRET = "contract-tests-secret-0123456789abcdef"


@dataclass
class Api:
    url: str
    home: Path
    repo: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    output: Path

    def token(self, role: str = "coordinator", agent: str = "contract") -> str:
        body = {"secret": SECRET, "agent": agent, "role": role, "ttl_s": 3600}
        answer = httpx.post(f"{self.url}/auth", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def counters(self, token: str) -> dict[str, int]:
        with self.client(token) as client:
            health = client.get("/health")
        assert health.status_code == 200, health.text
        errors: dict[str, int] = health.json()["errors"]
        return errors

    def rows(self) -> dict[str, int]:
        """Rows of every table of the store (SQLite in the state home)."""
        db = sqlite3.connect(f"file:{self.home / 'flotilla.db'}?mode=ro", uri=True)
        try:
            names = [
                r[0]
                for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if r[0] != "alembic_version"
            ]
            return {n: int(db.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0]) for n in names}
        finally:
            db.close()

    def log_text(self) -> str:
        daemon_log = self.home / "daemon.log"
        own = daemon_log.read_text(errors="replace") if daemon_log.exists() else ""
        return own + self.output.read_text(errors="replace")


def api_env(tmp: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_") and k != "TMUX"}
    env.update(
        {
            "FLOTILLA_HOME": str(home),
            "FLOTILLA_USER_CONFIG": str(tmp / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-contract-{os.getpid()}-{tmp.name}",
            "FLOTILLA_SECRET": SECRET,
            "GIT_AUTHOR_NAME": "Flotilla Test",
            "GIT_AUTHOR_EMAIL": "test@flotilla.invalid",
            "GIT_COMMITTER_NAME": "Flotilla Test",
            "GIT_COMMITTER_EMAIL": "test@flotilla.invalid",
        }
    )
    return env


@contextmanager
def serving(tmp: Path, *, project_config: str = "") -> Iterator[Api]:
    """`fleet serve` run from an empty folder (so no request reaches a repository by a
    relative path); `repo` is a real repository requests may name."""
    repo = make_repo(tmp / "repo")
    if project_config:
        (repo / ".flotilla").mkdir()
        (repo / ".flotilla" / "config.toml").write_text(project_config)
    home = tmp / "home"
    cwd = tmp / "cwd"
    cwd.mkdir()
    env = api_env(tmp, home)
    port = free_port()
    output = tmp / "serve.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "serve", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = Api(f"http://127.0.0.1:{port}", home, repo, env, proc, output)
    try:
        _wait_up(api)
        yield api
    finally:
        stop_process(proc)


def _wait_up(api: Api) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if api.proc.poll() is not None:
            raise AssertionError(f"fleet serve exited {api.proc.returncode}: {api.log_text()}")
        try:
            httpx.post(f"{api.url}/auth", json={}, timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.05)  # not accepting yet
    raise AssertionError(f"fleet serve did not start in {START_TIMEOUT_S:g}s: {api.log_text()}")


def message_of(response: httpx.Response | Any) -> str:
    """The one-line message of an error answer: `error`, else a string `detail`."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    for key in ("error", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""
