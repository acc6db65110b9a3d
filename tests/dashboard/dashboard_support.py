"""A real `fleet serve` on a free 127.0.0.1 port for the dashboard's browser tests, the
scripted agents they run, and Playwright driving the system's Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from e2e_support import FLEET, TERMINAL, Fleet, make_repo, stop_process
from playwright.sync_api import Page, expect

CHROMIUM = "/usr/bin/chromium"  # Debian's package; scripts/prerequisites.sh installs it
START_TIMEOUT_S = 30.0
LIVE_S = 20_000  # ms: how long a live change may take to show in the page

# Says hello, runs a little while (so the page sees it running), spends a little.
QUICK = """
[[steps]]
action = "say"
text = "hello from the quick agent"
[[steps]]
action = "sleep"
seconds = 2
[[steps]]
action = "usage"
input_tokens = 100
output_tokens = 20
cost_usd = 0.01
"""

# Prints a line, waits until the file named by its prompt exists (at most 60 s), prints
# another, then keeps running with a heartbeat until it is killed.
GATED = """
[[steps]]
action = "say"
text = "first line from the agent"
[[steps]]
action = "run"
command = "i=0; while [ ! -e '{prompt}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
[[steps]]
action = "say"
text = "second line, after the signal"
[[steps]]
action = "sleep"
seconds = 120
heartbeat = 1
"""

# Commits a file; a follow-up prompt appends it to notes.md and commits again.
FEATURE = """
[[steps]]
action = "write"
path = "feature.txt"
content = "made by the agent\\n"
[[steps]]
action = "commit"
message = "add feature.txt"
[[steps]]
action = "say"
text = "added feature.txt"
[[on_prompt]]
action = "append"
path = "notes.md"
content = "{prompt}\\n"
[[on_prompt]]
action = "commit"
message = "notes"
[[on_prompt]]
action = "say"
text = "noted: {prompt}"
"""

LONG = """
[[steps]]
action = "sleep"
seconds = 120
heartbeat = 2
"""


@dataclass
class Served:
    fleet: Fleet
    proc: subprocess.Popen[bytes]
    url: str
    output: Path
    _reader: str = ""

    def token(self, role: str, ttl_s: int = 600) -> str:
        """What `fleet token --role ROLE` prints, asked of POST /auth with the fleet secret."""
        secret = (self.fleet.home / "secret").read_text().strip()
        body = {"secret": secret, "agent": "dash", "role": role, "ttl_s": ttl_s}
        answer = httpx.post(f"{self.url}/auth", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def workers(self) -> dict[str, dict[str, Any]]:
        """The workers by name, as the API lists them (cheaper than a `fleet list` each time)."""
        if not self._reader:
            self._reader = self.token("monitor")
        with self.api(self._reader) as client:
            listed = client.get("/workers", params={"project": str(self.fleet.repo)})
        assert listed.status_code == 200, listed.text
        return {w["name"]: w for w in listed.json()}

    def wait(self, name: str, what: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + LIVE_S / 1000
        while True:
            found = self.workers().get(name)
            if found is not None and ok(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {name} to be {what}: {found}")
            time.sleep(0.2)

    def create(self, name: str, script: str, prompt: str = "work") -> None:
        path = self.fleet.script(name, script)
        self.fleet.run("create", name, "-p", prompt, env={"FLOTILLA_SCRIPT": str(path)})

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def api(self, token: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def open_dashboard(page: Page, served: Served, token: str) -> None:
    """Sign in through the page's form and wait until it is live."""
    page.goto(served.url)
    expect(page.locator("#login-view")).to_be_visible()
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#mode")).to_contain_text("live")
    page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads


def row(page: Page, name: str) -> Any:
    return page.locator(f'#workers tr[data-worker="{name}"]')


@contextmanager
def dashboard_fleet(tmp: Path) -> Iterator[Served]:
    """A repository whose agents are scripted (each worker's script comes with its
    creation), a private state home, and `fleet serve` over them. Afterwards the agents
    still running are killed while the daemon is up, then the daemon is stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_") and k != "TMUX"}
    env.update(
        {
            "FLOTILLA_HOME": str(tmp / "home"),
            "FLOTILLA_USER_CONFIG": str(tmp / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-dash-{os.getpid()}-{tmp.name}",
            "GIT_AUTHOR_NAME": "Flotilla Test",
            "GIT_AUTHOR_EMAIL": "test@flotilla.invalid",
            "GIT_COMMITTER_NAME": "Flotilla Test",
            "GIT_COMMITTER_EMAIL": "test@flotilla.invalid",
        }
    )
    fleet = Fleet(make_repo(tmp / "repo"), tmp / "home", env)
    (fleet.repo / ".flotilla").mkdir()
    (fleet.repo / ".flotilla" / "config.toml").write_text('[project]\ndefault_agent = "scripted"\n')
    with serving(fleet) as served:
        try:
            yield served
        finally:
            _kill_leftovers(fleet)


def _kill_leftovers(fleet: Fleet) -> None:
    listed = fleet.run("--json", "list", check=False, timeout=30)
    for worker in json.loads(listed.stdout or "[]") if listed.returncode == 0 else []:
        if worker["state"] not in TERMINAL:
            fleet.run("kill", worker["name"], "--force", check=False, timeout=60)


@contextmanager
def serving(fleet: Fleet) -> Iterator[Served]:
    """`fleet serve --port 0` (auth on); stopped with SIGTERM afterwards."""
    output = fleet.home.parent / "serve.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "serve", "--port", "0"],
            cwd=fleet.repo,
            env=fleet.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        served = Served(fleet, proc, _wait_up(proc, output), output)
        yield served
    finally:
        stop_process(proc)


def _wait_up(proc: subprocess.Popen[bytes], output: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = output.read_text(errors="replace")
        if proc.poll() is not None:
            raise AssertionError(f"fleet serve exited {proc.returncode}: {text}")
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)", text)
        if found:
            try:
                httpx.get(f"{found.group(1)}/health", timeout=5)  # any answer: it is up
                return found.group(1)
            except httpx.TransportError:
                pass  # printed, not yet accepting
        time.sleep(0.05)
    raise AssertionError(f"fleet serve did not start in {START_TIMEOUT_S:g}s: {output.read_text()}")
