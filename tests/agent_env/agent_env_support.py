"""A real `fleet serve` with a known fleet secret, and scripted agents that write their
environment to a file outside the state home, for the agent environment tests."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from e2e_support import FLEET, Fleet, fleet_session, free_port, stop_process

SECRET = "agent-env-tests-secret-0123456789abcdef"
TIMEOUT_S = 120  # limits.timeout_s of the test project: the token lives this + margin
START_TIMEOUT_S = 30.0

# The agent writes its whole environment to $DUMP_DIR/$FLOTILLA_WORKER.env.
DUMP_SCRIPT = """
[[steps]]
action = "run"
command = 'env > "$DUMP_DIR/$FLOTILLA_WORKER.env"'
check = true

[[steps]]
action = "say"
text = "dumped"
"""


@dataclass
class Dumping:
    """A fleet whose scripted agents dump their environment into `dumps`."""

    fleet: Fleet
    dumps: Path

    def env_of(self, name: str, timeout: float = 60) -> dict[str, str]:
        path = self.dumps / f"{name}.env"
        deadline = time.monotonic() + timeout
        while not path.exists() or not path.read_text().endswith("\n"):
            assert time.monotonic() < deadline, f"{name} wrote no environment in {timeout}s"
            time.sleep(0.1)
        env = {}
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.startswith("FLOTILLA_"):
                env[key] = value
        return env

    def request_env(self) -> dict[str, str]:
        """What a client passes as a worker's environment, as the CLI does: the daemon
        places run folders and worktrees by the request's FLOTILLA_HOME."""
        keep = ("PATH", "HOME", "FLOTILLA_HOME", "FLOTILLA_USER_CONFIG", "DUMP_DIR")
        env = {k: v for k, v in self.fleet.env.items() if k in keep}
        env.setdefault("PATH", os.environ["PATH"])
        return env


@contextmanager
def dumping_fleet(tmp_path: Path) -> Iterator[Dumping]:
    with fleet_session(tmp_path) as fleet:
        dumps = tmp_path / "dumps"  # outside the state home on purpose
        dumps.mkdir()
        script = tmp_path / "dump-env.toml"
        script.write_text(DUMP_SCRIPT)
        (fleet.repo / ".flotilla").mkdir()
        (fleet.repo / ".flotilla" / "config.toml").write_text(
            f'[project]\ndefault_agent = "scripted"\n\n[limits]\ntimeout_s = {TIMEOUT_S}\n\n'
            f'[agents.scripted]\nscript = "{script}"\n'
        )
        fleet.env["FLOTILLA_SECRET"] = SECRET
        fleet.env["DUMP_DIR"] = str(dumps)
        yield Dumping(fleet, dumps)


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    output: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def token(self, role: str = "coordinator", agent: str = "tester") -> str:
        body = {"secret": SECRET, "agent": agent, "role": role}
        answer = httpx.post(f"{self.url}/auth", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])


@contextmanager
def serving(dumping: Dumping) -> Iterator[Served]:
    fleet = dumping.fleet
    port = free_port()
    output = fleet.home.parent / "serve.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "serve", "--port", str(port)],
            cwd=fleet.repo,
            env=fleet.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", proc, output)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"fleet serve exited: {output.read_text()}"
            assert time.monotonic() < deadline, f"fleet serve did not start: {output.read_text()}"
            try:
                httpx.post(f"{served.url}/auth", json={}, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield served
    finally:
        stop_process(proc)


def files_holding(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose bytes contain `needle`."""
    data = needle.encode()
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                if data in path.read_bytes():
                    found.append(path)
            except OSError:
                continue  # a socket or a file gone meanwhile
    return found
