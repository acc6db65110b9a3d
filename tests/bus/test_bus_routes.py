"""The message routes over real uvicorn on 127.0.0.1 with auth on: who may send, as whom,
broadcast, mark read; bad bodies; the event log by cursor and filter over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bus_daemon import InProcessDaemon, running_daemon
from bus_support import PROJECT, add_worker

from flotilla import counters
from flotilla.domain.roles import Role
from flotilla.domain.states import WorkerState
from flotilla.server.apikeys import ApiKeys
from flotilla.server.auth import Authority, Tokens

SECRET = "a-test-secret-of-enough-length"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[InProcessDaemon]:
    home = tmp_path / "home"
    authority = Authority(Tokens(SECRET), ApiKeys.at(home), tcp_auth=True)
    socket_name = f"flotilla-bus-{os.getpid()}-{tmp_path.name}"
    with running_daemon(home, socket_name, authority=authority, supervise=False) as running:
        add_worker(running.store, "w1", WorkerState.RUNNING)
        add_worker(running.store, "w2", WorkerState.RUNNING)
        yield running


def client(daemon: InProcessDaemon, agent: str | None, role: Role = Role.WORKER) -> httpx.Client:
    headers = {}
    if agent is not None:
        token, _ = Tokens(SECRET).issue(agent, "default", role, 600)
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=daemon.url, headers=headers, timeout=30)


def send(http: httpx.Client, **body: object) -> httpx.Response:
    return http.post("/messages", json={"project": PROJECT, "body": "hi", **body})


def test_a_token_speaks_only_as_its_own_agent(daemon: InProcessDaemon) -> None:
    with client(daemon, "w1") as w1:
        answer = send(w1, to="w2")
        assert answer.status_code == 200, answer.text
        [message] = answer.json()["messages"]
        assert message["sender"] == "w1" and message["state"] == "pending"
        forged = send(w1, to="w2", sender="lead")
        assert forged.status_code == 403
        assert "cannot send as 'lead'" in forged.json()["error"]
    assert len(daemon.messages.inbox(PROJECT, "w2")) == 1  # the forged one was not stored


def test_roles_decide_who_may_send_broadcast_and_read(daemon: InProcessDaemon) -> None:
    counters.reset()
    with client(daemon, None) as anonymous:
        assert send(anonymous, to="w2").status_code == 401
    with client(daemon, "watcher", Role.MONITOR) as monitor:
        refused = send(monitor, to="w2")
        assert refused.status_code == 403 and "message_send" in refused.json()["error"]
        assert monitor.get("/inbox/w2", params={"project": PROJECT}).status_code == 200
    with client(daemon, "w1") as worker:
        refused = send(worker, team="default")
        assert refused.status_code == 403 and "team-lead" in refused.json()["error"]
    with client(daemon, "lead", Role.TEAM_LEAD) as lead:
        answer = send(lead, team="default", body="all hands")
        assert answer.status_code == 200, answer.text
        sent = answer.json()
        assert sent["broadcast_id"] and {m["recipient"] for m in sent["messages"]} == {"w1", "w2"}
    assert counters.snapshot().get("auth.forbidden", 0) >= 2


def test_only_the_recipient_marks_a_message_read(daemon: InProcessDaemon) -> None:
    answer = daemon.messages.send(PROJECT, "user", "w2", "ping")
    daemon.store.take_next_prompt(answer.worker_id or "")  # the turn takes it
    daemon.messages.deliver_pending()
    with client(daemon, "w1") as w1:
        refused = w1.post(f"/messages/{answer.id}/read")
        assert refused.status_code == 403
    with client(daemon, "w2") as w2:
        marked = w2.post(f"/messages/{answer.id}/read")
        assert marked.status_code == 200 and marked.json()["state"] == "read"
        unread = w2.get("/inbox/w2", params={"project": PROJECT, "unread": True})
        assert unread.json() == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"to": "w2", "team": "default"}, 400, "not both"),
        ({}, 400, "not both"),
        ({"to": "nobody"}, 404, "no agent named 'nobody'"),
        ({"to": "w2", "body": ""}, 422, "body"),
        ({"to": "w2", "colour": "red"}, 422, "colour"),
        ({"team": "default", "reply_to": "m-1"}, 400, "cannot be a reply"),
    ],
)
def test_bad_message_bodies_get_a_clear_4xx_and_store_nothing(
    daemon: InProcessDaemon, body: dict[str, object], status: int, says: str
) -> None:
    with client(daemon, "lead", Role.COORDINATOR) as lead:
        answer = send(lead, **body)
    assert answer.status_code == status
    assert says in answer.text
    assert daemon.messages.db.list_messages(PROJECT) == []


def test_unknown_message_ids_are_404(daemon: InProcessDaemon) -> None:
    with client(daemon, "w1") as w1:
        assert w1.get("/messages/m-none").status_code == 404
        assert w1.post("/messages/m-none/read").status_code == 404


def test_the_event_log_reads_by_cursor_and_filter(daemon: InProcessDaemon) -> None:
    first = daemon.messages.send(PROJECT, "user", "w1", "one")
    second = daemon.messages.send(PROJECT, "user", "w2", "two")
    with client(daemon, "watcher", Role.MONITOR) as monitor:
        everything = monitor.get("/events").json()
        assert [e["seq"] for e in everything] == sorted(e["seq"] for e in everything)
        about_second = monitor.get("/events", params={"subject": second.id}).json()
        assert {e["subject"] for e in about_second} == {second.id}
        sent = monitor.get("/events", params={"kind": "message.sent"}).json()
        assert [e["subject"] for e in sent] == [first.id, second.id]
        after = monitor.get("/events", params={"since": sent[0]["seq"], "limit": 1}).json()
        assert len(after) == 1 and after[0]["seq"] > sent[0]["seq"]
        assert monitor.get("/events", params={"limit": 0}).status_code == 422
