"""Messages end to end: real scripted agents started by the real supervisor, the `fleet`
CLI as a subprocess, the message routes on real uvicorn (the in-process daemon of
bus_daemon.py, until the real daemon includes them), events read back over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bus_daemon import InProcessDaemon, running_daemon
from e2e_support import FLEET, make_repo

from flotilla.bus.message import MessageState
from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker
from flotilla.orchestrator.creation import CreateRequest
from flotilla.orchestrator.messaging import MessageService
from flotilla.orchestrator.turns import tmux_session_name
from flotilla.runtime.tmux import TmuxSession

pytestmark = pytest.mark.slow

BUSY_THEN_LISTEN = """
[[steps]]
action = "sleep"
seconds = 2.5
heartbeat = 0.5
[[steps]]
action = "summary"
text = "first turn done"
[[on_prompt]]
action = "append"
path = "inbox.txt"
content = "{prompt}\\n--\\n"
"""

WAIT_FOR_INPUT = """
[[steps]]
action = "wait_input"
text = "anything for me?"
seconds = 60
[[steps]]
action = "sleep"
seconds = 5
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_git: None) -> dict[str, str]:
    """The daemon runs in this process: give it (and the CLI) a private state home."""
    for name in list(os.environ):
        if name.startswith("FLOTILLA_") or name == "TMUX":
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLOTILLA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLOTILLA_USER_CONFIG", str(tmp_path / "user-config.toml"))
    monkeypatch.setenv("FLOTILLA_TMUX_SOCKET", f"flotilla-bus-{os.getpid()}-{tmp_path.name}")
    return dict(os.environ)


@pytest.fixture
def daemon(env: dict[str, str]) -> Iterator[InProcessDaemon]:
    home = Path(env["FLOTILLA_HOME"])
    with running_daemon(home, env["FLOTILLA_TMUX_SOCKET"]) as running:
        try:
            yield running
        finally:
            for worker in running.store.list_workers():
                running.service.kill(worker)
            if shutil.which("tmux"):
                TmuxSession(env["FLOTILLA_TMUX_SOCKET"]).kill_server()


def project(tmp_path: Path, script: str) -> Path:
    repo = make_repo(tmp_path / "repo")
    script_path = tmp_path / "agent.toml"
    script_path.write_text(script)
    (repo / ".flotilla").mkdir()
    (repo / ".flotilla" / "config.toml").write_text(
        f'[project]\ndefault_agent = "scripted"\n[agents.scripted]\nscript = "{script_path}"\n'
    )
    return repo.resolve()


def fleet(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLEET, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def create(daemon: InProcessDaemon, repo: Path, name: str, **options: Any) -> Worker:
    request = CreateRequest(project=str(repo), name=name, prompt="start", env=dict(os.environ))
    for key, value in options.items():
        setattr(request, key, value)
    return daemon.service.create_worker(request)


def state_of(daemon: InProcessDaemon, worker: Worker) -> Worker:
    return daemon.store.get_worker(worker.id)


def test_a_headless_agent_gets_a_message_as_its_next_turn(
    tmp_path: Path, env: dict[str, str], daemon: InProcessDaemon
) -> None:
    repo = project(tmp_path, BUSY_THEN_LISTEN)
    worker = create(daemon, repo, "w1")
    wait_until(lambda: state_of(daemon, worker).state is WorkerState.RUNNING, "w1 to run")

    sent = fleet(repo, env, "--json", "send", "w1", "please also write the docs")
    assert sent.returncode == 0, sent.stderr
    [message] = json.loads(sent.stdout)["messages"]
    # Busy: queued as its next turn, not delivered yet.
    assert message["state"] == "pending" and message["prompt_id"] is not None
    assert message["sender"] == "user" and message["recipient"] == "w1"
    assert state_of(daemon, worker).state is WorkerState.RUNNING

    delivered = wait_until(
        lambda: daemon.messages.get(message["id"]).state is MessageState.DELIVERED,
        "the message to be delivered",
    )
    assert delivered
    done = wait_until(
        lambda: (w := state_of(daemon, worker)).state.is_terminal and w.attempt == 2 and w,
        "the follow-up turn to end",
    )
    assert done.state is WorkerState.SUCCEEDED, done.error
    seen = (Path(done.worktree) / "inbox.txt").read_text()
    assert seen.count("please also write the docs") == 1  # the agent saw it, once
    assert f"[flotilla message {message['id']} from user]" in seen

    listed = fleet(repo, env, "--json", "inbox", "w1")
    assert [m["state"] for m in json.loads(listed.stdout)] == ["delivered"]
    own = fleet(repo, {**env, "FLOTILLA_WORKER": "w1"}, "--json", "inbox", "w1")
    assert [m["state"] for m in json.loads(own.stdout)] == ["read"]  # the agent read it
    unread = fleet(repo, env, "--json", "inbox", "w1", "--unread")
    assert json.loads(unread.stdout) == []
    table = fleet(repo, env, "inbox", "w1")
    assert table.returncode == 0 and message["id"] in table.stdout and "read" in table.stdout

    with httpx.Client(base_url=daemon.url, timeout=30) as http:
        events = http.get("/events", params={"since": 0, "kind": "message"}).json()
        assert [e["kind"] for e in events] == [
            "message.sent",
            "message.queued",
            "message.delivered",
            "message.read",
        ]
        assert {e["subject"] for e in events} == {message["id"]}
        rest = http.get("/events", params={"since": events[1]["seq"], "kind": "message"}).json()
        assert [e["seq"] for e in rest] == [e["seq"] for e in events[2:]]
        bad = http.get("/events", params={"since": -1})
        assert bad.status_code == 422


def test_messages_sent_together_with_extra_deliverers_each_arrive_once(
    tmp_path: Path, daemon: InProcessDaemon
) -> None:
    """Four messages sent at once while the agent is busy, the daemon's delivery loop and
    three more deliverers (as if other daemons) all racing: each becomes one turn."""
    repo = project(tmp_path, BUSY_THEN_LISTEN)
    worker = create(daemon, repo, "w2")
    wait_until(lambda: state_of(daemon, worker).state is WorkerState.RUNNING, "w2 to run")
    others = [MessageService(daemon.store, daemon.service, daemon.bus) for _ in range(3)]
    stop = threading.Event()

    def keep_delivering(service: MessageService) -> None:
        while not stop.is_set():
            service.deliver_pending()
            time.sleep(0.01)

    racers = [threading.Thread(target=keep_delivering, args=(s,)) for s in others]
    for racer in racers:
        racer.start()
    try:
        bodies = [f"note number {i}" for i in range(4)]
        senders = [
            threading.Thread(target=daemon.messages.send, args=(str(repo), "lead", "w2", body))
            for body in bodies
        ]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(30)
        done = wait_until(
            lambda: (w := state_of(daemon, worker)).state.is_terminal and w.attempt == 5 and w,
            "four follow-up turns",
            timeout=60,
        )
    finally:
        stop.set()
        for racer in racers:
            racer.join(30)
    seen = (Path(done.worktree) / "inbox.txt").read_text()
    for body in bodies:
        assert seen.count(body) == 1, seen
    inbox = daemon.messages.inbox(str(repo), "w2")
    assert [m.state for m in inbox] == [MessageState.DELIVERED] * 4
    assert state_of(daemon, worker).attempt == 5  # no turn twice


def test_a_message_to_an_unknown_agent_is_one_line_exit_2_and_nothing_stored(
    tmp_path: Path, env: dict[str, str], daemon: InProcessDaemon
) -> None:
    repo = project(tmp_path, BUSY_THEN_LISTEN)
    proc = fleet(repo, env, "send", "nobody", "hello?")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "no agent named 'nobody'" in proc.stderr
    empty = fleet(repo, env, "send", "nobody", "")
    assert empty.returncode == 2 and empty.stderr.strip().count("\n") == 0
    assert daemon.messages.db.list_messages(str(repo)) == []
    assert daemon.messages.db.head() == 0  # no event either


@pytest.mark.tmux
def test_an_interactive_agent_gets_a_message_in_its_pane_confirmed(
    tmp_path: Path, env: dict[str, str], daemon: InProcessDaemon
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    repo = project(tmp_path, WAIT_FOR_INPUT)
    worker = create(daemon, repo, "tty", interactive=True)
    wait_until(lambda: state_of(daemon, worker).state is WorkerState.WAITING, "tty to wait")
    sent = fleet(repo, env, "--json", "send", "tty", "use PostgreSQL")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [message] = json.loads(sent.stdout)["messages"]
    assert message["state"] == "delivered"  # confirmed from the pane, not assumed
    tmux = TmuxSession(env["FLOTILLA_TMUX_SOCKET"])
    session = tmux_session_name(state_of(daemon, worker))
    wait_until(
        lambda: f"received input: [flotilla message {message['id']}" in tmux.capture(session, 200),
        "the agent to read the typed message",
        timeout=10,
    )
