"""Support for end-to-end tests: a real git repository, a private state home, the
real `fleet` CLI run as a subprocess, and its daemon stopped afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
