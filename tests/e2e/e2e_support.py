"""Support for end-to-end tests: a real git repository, a private state home, the
real `fleet` CLI run as a subprocess, and its daemon stopped afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.runtime.tmux import TmuxSession

FLEET = [sys.executable, "-m", "flotilla.cli"]
GIT_ID = ["-c", "user.name=Flotilla Test", "-c", "user.email=test@flotilla.invalid"]


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *GIT_ID, "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return proc.stdout


@dataclass
class Fleet:
    repo: Path
    home: Path
    env: dict[str, str]

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*FLEET, *args],
            cwd=cwd or self.repo,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"fleet {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.run("--json", *args, **kwargs).stdout)

    def workers(self) -> dict[str, dict[str, Any]]:
        return {w["name"]: w for w in self.json("list")}

    def wait(
        self,
        predicate: Callable[[dict[str, dict[str, Any]]], bool],
        timeout: float = 60,
        what: str = "condition",
    ) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        workers = self.workers()
        while time.monotonic() < deadline:
            workers = self.workers()
            if predicate(workers):
                return workers
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {json.dumps(workers, indent=1)}")

    def wait_terminal(self, *names: str, timeout: float = 60) -> dict[str, dict[str, Any]]:
        done = {"succeeded", "failed", "cancelled"}
        return self.wait(
            lambda ws: all(n in ws and ws[n]["state"] in done for n in names),
            timeout,
            f"{names} to finish",
        )

    def script(self, name: str, text: str) -> Path:
        path = self.home.parent / f"{name}.toml"
        path.write_text(text)
        return path


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README.md").write_text("# sample\n")
    (path / "app.py").write_text("def answer():\n    return 41\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


TERMINAL = {"succeeded", "failed", "cancelled"}


@contextmanager
def fleet_session(
    tmp_path: Path,
    *,
    drop_env_prefixes: tuple[str, ...] = (),
    path_first: Path | None = None,
) -> Iterator[Fleet]:
    """A repository, a private state home and tmux socket; afterwards every agent still
    running is killed (agents outlive the daemon), the daemon stopped, tmux ended."""
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLOTILLA_", *drop_env_prefixes)) and k != "TMUX"
    }
    if path_first is not None:
        env["PATH"] = os.pathsep.join([str(path_first), env.get("PATH", "/usr/bin:/bin")])
    env.update(
        {
            "FLOTILLA_HOME": str(home),
            "FLOTILLA_USER_CONFIG": str(tmp_path / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-test-{os.getpid()}-{tmp_path.name}",
            "GIT_AUTHOR_NAME": "Flotilla Test",
            "GIT_AUTHOR_EMAIL": "test@flotilla.invalid",
            "GIT_COMMITTER_NAME": "Flotilla Test",
            "GIT_COMMITTER_EMAIL": "test@flotilla.invalid",
        }
    )
    fleet = Fleet(repo, home, env)
    try:
        yield fleet
    finally:
        _stop_leftover_agents(fleet)
        subprocess.run(
            [*FLEET, "daemon", "stop"],
            env=env,
            capture_output=True,
            timeout=60,
            cwd=repo,
            check=False,
        )
        if shutil.which("tmux"):
            TmuxSession(env["FLOTILLA_TMUX_SOCKET"]).kill_server()


def _stop_leftover_agents(fleet: Fleet) -> None:
    """A failed test may leave an agent running: kill it."""
    if not fleet.home.exists():
        return  # the daemon never started
    listed = fleet.run("--json", "list", check=False, timeout=30)
    if listed.returncode != 0:
        return
    for worker in json.loads(listed.stdout or "[]"):
        if worker["state"] not in TERMINAL:
            fleet.run("kill", worker["name"], "--force", check=False, timeout=60)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a daemon's clean stop), then SIGKILL if it is not gone within 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
