"""Server-Sent Events, /metrics and /health's bus on a real `fleet serve`, after a
scripted worker ran (tokens, cost, a delivered message) and tasks were made."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from streams_support import Daemon, serving, sse_events, wait_for

pytestmark = pytest.mark.slow


def post_tasks(daemon: Daemon, team: str, count: int) -> list[str]:
    return [
        daemon.call("POST", "/tasks", json={"team": team, "title": f"{team} {i}"})["id"]
        for i in range(count)
    ]


def read_sse(
    daemon: Daemon, count: int, headers: dict[str, str], **params: Any
) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """The first `count` events of one SSE response, and its raw lines."""
    lines: list[str] = []
    with (
        httpx.Client(base_url=daemon.url, timeout=30) as client,
        client.stream("GET", "/events/stream", params=params, headers=headers) as answer,
    ):
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            lines.append(line)
            if len(sse_events(lines)) >= count:
                break
    return sse_events(lines), lines


def test_sse_resumes_from_last_event_id_missing_nothing(daemon: Daemon) -> None:
    token = daemon.token("monitor")
    made = post_tasks(daemon, "sse", 3)
    auth = {"Authorization": f"Bearer {token}"}
    first, lines = read_sse(daemon, 3, auth, since=0, kind="task", team="sse")
    assert lines[0] == "retry: 2000"
    assert [data["subject"] for _, data in first] == made
    assert all(seq == data["seq"] for seq, data in first)
    later = post_tasks(daemon, "sse", 4)  # while disconnected
    # An EventSource resends the last id it saw; it wins over `since`. A token may be
    # a query parameter (EventSource cannot set headers).
    resume = {"Last-Event-ID": str(first[-1][0])}
    second, _ = read_sse(daemon, 4, resume, since=0, kind="task", team="sse", token=token)
    assert [data["subject"] for _, data in second] == later
    seqs = [seq for seq, _ in first + second]
    assert seqs == sorted(set(seqs))


def test_sse_refuses_a_missing_token_and_a_bad_cursor(daemon: Daemon) -> None:
    with daemon.http() as client:
        missing = client.get("/events/stream")
        bad = client.get(
            "/events/stream",
            headers={"Last-Event-ID": "soon", "Authorization": f"Bearer {daemon.token('monitor')}"},
        )
    assert missing.status_code == 401 and "token" in missing.json()["error"]
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(family: Any, suffix: str = "", **labels: str) -> float:
    total = 0.0
    for sample in family.samples:
        if sample.name == family.name + suffix and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            total += sample.value
    return total


def test_metrics_show_every_family_after_a_scripted_worker(daemon: Daemon) -> None:
    daemon.create_worker("measured")
    daemon.wait_worker("measured", {"succeeded"})
    sent = daemon.call(
        "POST",
        "/messages",
        json={"project": str(daemon.repo), "to": "measured", "body": "one more thing"},
    )
    message_id = sent["messages"][0]["id"]
    wait_for(
        lambda: daemon.call("GET", f"/messages/{message_id}")["state"] in ("delivered", "read"),
        "the message to be delivered",
    )
    daemon.wait_worker("measured", {"succeeded"})
    post_tasks(daemon, "metrics", 2)
    monitor = daemon.token("monitor")
    with daemon.http() as client:
        refused = client.get("/metrics")
    assert refused.status_code == 401

    with daemon.http(monitor) as client:
        missing = client.get("/workers/nobody", params={"project": str(daemon.repo)})
        assert missing.status_code == 404
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = _families(answer.text)

    workers = found["flotilla_workers"]
    assert _value(workers, state="succeeded", agent="scripted") >= 1
    assert {s.labels["state"] for s in workers.samples} >= {"queued", "running", "succeeded"}
    durations = found["flotilla_worker_duration_seconds"]
    runs = _value(durations, "_count", agent="scripted")
    assert runs >= 2  # the first turn, and the message's turn
    assert 0 < _value(durations, "_sum", agent="scripted") < 120
    tokens = found["flotilla_tokens"]
    assert _value(tokens, "_total", agent="scripted", direction="input") >= 1200
    assert _value(tokens, "_total", agent="scripted", direction="output") >= 340
    assert _value(found["flotilla_cost_usd"], "_total", agent="scripted") >= 0.0125
    assert _value(found["flotilla_tasks"], state="queued") >= 2
    assert found["flotilla_queue_depth"].samples[0].value >= 0
    assert _value(found["flotilla_message_deliveries"], "_total") >= 1
    assert _value(found["flotilla_message_delivery_failures"], "_total") >= 0
    requests = found["flotilla_api_requests"]
    assert _value(requests, "_total", method="POST", route="/workers", status="200") >= 1
    assert _value(requests, "_total", route="/workers/{name}", status="404") >= 1
    assert _value(requests, "_total", route="/metrics", status="401") >= 1
    assert not [s for s in requests.samples if "nobody" in s.labels.get("route", "")]
    errors = found["flotilla_errors"]
    assert _value(errors, "_total", name="auth.missing_token") >= 1
    assert found["flotilla_store_up"].samples[0].value == 1
    assert found["flotilla_bus_last_seq"].samples[0].value >= 1
    assert "flotilla_stream_clients" in found and "flotilla_info" in found


def test_health_shows_the_bus_and_its_last_seq(daemon: Daemon) -> None:
    [task] = post_tasks(daemon, "health", 1)
    [event] = daemon.call("GET", "/events", params={"since": 0, "subject": task})

    def caught_up() -> dict[str, Any] | None:
        health: dict[str, Any] = daemon.call("GET", "/health")
        return health if health["bus"]["last_seq"] >= event["seq"] else None

    health = wait_for(caught_up, "the bus to fan out the task's event", timeout=10)
    assert health["status"] == "ok"
    assert health["bus"]["reachable"] is True
    with daemon.http(daemon.token("monitor")) as client:
        assert client.get("/health").json()["bus"]["reachable"] is True


def test_the_daemon_stops_promptly_with_a_stream_open(tmp_path: Path) -> None:
    """Open event streams end when the daemon stops, rather than hold it for uvicorn's
    graceful timeout."""
    with serving(tmp_path) as running:
        token = running.token("monitor")
        opened = threading.Event()
        ended: list[float] = []

        def listen() -> None:
            with (
                httpx.Client(base_url=running.url, timeout=30) as client,
                client.stream("GET", "/events/stream", params={"token": token}) as answer,
            ):
                try:
                    for line in answer.iter_lines():
                        if line.startswith(": cursor"):
                            opened.set()
                except httpx.RemoteProtocolError:
                    pass  # the server closed the chunked stream: what a stop looks like
            ended.append(time.monotonic())

        listener = threading.Thread(target=listen)
        listener.start()
        assert opened.wait(20)
        asked = time.monotonic()
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=30) == 0
        stopped = time.monotonic() - asked
        listener.join(timeout=30)
    assert stopped < 3.0, f"the daemon took {stopped:.1f}s to stop"
    assert ended and ended[0] - asked < 3.0
