"""Bad requests to the task routes: each a 4xx with one line saying what is wrong, counted,
and nothing stored (no task, no history entry, no event)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tasks_api_server import TaskApi

from flotilla import counters

LONG = "x" * 201
JSON = {"Content-Type": "application/json"}
BAD_BODIES: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/tasks", {"team": "core"}, 422, "title: Field required"),
    ("POST", "/tasks", {"team": "core", "title": ""}, 422, "title: String should have at least"),
    ("POST", "/tasks", {"team": "core", "title": "   "}, 400, "the task title is empty"),
    ("POST", "/tasks", {"team": "core", "title": LONG}, 422, "title: String should have at most"),
    ("POST", "/tasks", {"team": "core", "title": "t", "priority": 10**7}, 422, "priority:"),
    ("POST", "/tasks", {"team": "core", "title": "t", "priority": "high"}, 422, "priority:"),
    ("POST", "/tasks", {"team": "core", "title": "t", "labels": ["a"] * 33}, 422, "labels:"),
    ("POST", "/tasks", {"team": "core", "title": "t", "labels": "bug"}, 422, "labels:"),
    ("POST", "/tasks", {"team": "core", "title": "t", "labels": ["a b"]}, 400, "label 'a b'"),
    ("POST", "/tasks", {"team": "core", "title": "t", "colour": "red"}, 422, "colour:"),
    ("POST", "/tasks", {"team": "core", "title": "t", "depends_on": ["t-nope"]}, 400, "t-nope"),
    ("POST", "/tasks", {"title": "t", "team": "x" * 129}, 422, "team:"),
    ("POST", "/tasks", '{"team": ', 400, "not valid JSON (Expecting value at line 1 column 10)"),
    ("POST", "/tasks/claim", {"lease_s": 0}, 422, "lease_s:"),
    ("POST", "/tasks/claim", {"labels": ["a/"]}, 400, "capability label 'a/'"),
    ("GET", "/tasks?limit=0", None, 422, "limit:"),
    ("GET", "/tasks?state=lost", None, 400, "'lost' is not a task state"),
    ("GET", "/tasks/t-nope", None, 404, "no task with id 't-nope'"),
    ("GET", "/tasks/t-nope/history", None, 404, "no task with id 't-nope'"),
    ("POST", "/tasks/t-nope/complete", {}, 404, "no task with id 't-nope'"),
    ("PATCH", "/tasks/{id}", {}, 400, "nothing to update"),
    ("PATCH", "/tasks/{id}", {"title": None}, 400, "'title' cannot be null"),
    ("PATCH", "/tasks/{id}", {"depends_on": ["{id}"]}, 400, "cycle"),
    ("POST", "/tasks/{id}/fail", {"reason": ""}, 422, "reason: String should have at least"),
    ("POST", "/tasks/{id}/fail", {}, 422, "reason: Field required"),
    ("POST", "/tasks/{id}/heartbeat", {"lease_s": 10**9}, 422, "lease_s:"),
    ("POST", "/tasks/{id}/assign", {}, 422, "assignee: Field required"),
]


def _fill(value: Any, task_id: str) -> Any:
    """The body with "{id}" (in a list of ids) replaced by the existing task's id."""
    if isinstance(value, dict):
        return {k: _fill(v, task_id) for k, v in value.items()}
    if isinstance(value, list):
        return [task_id if v == "{id}" else v for v in value]
    return value


def _send(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    if isinstance(body, str):
        return client.request(method, path, content=body, headers=JSON)
    return client.request(method, path, json=body)


def _stored(client: httpx.Client) -> Any:
    tasks = client.get("/tasks").json()
    history = {t["id"]: client.get(f"/tasks/{t['id']}/history").json() for t in tasks}
    events = client.get("/events", params={"kind": "task"}).json()
    return tasks, history, [e["seq"] for e in events]


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"), BAD_BODIES)
def test_a_bad_request_is_one_clear_line_and_stores_nothing(
    shared_api: TaskApi, method: str, path: str, body: Any, status: int, fragment: str
) -> None:
    with shared_api.as_("boss", "core", "coordinator") as boss:
        task = boss.post("/tasks", json={"team": "core", "title": "exists"}).json()
        path, body = path.replace("{id}", task["id"]), _fill(body, task["id"])
        if path.endswith(("/fail", "/heartbeat")):
            boss.post(f"/tasks/{task['id']}/assign", json={"assignee": "w1"})
        before, counted = _stored(boss), counters.snapshot()
        answer = _send(boss, method, path, body)
        assert answer.status_code == status, answer.text
        message = answer.json()["error"]
        assert fragment in message, message
        assert "\n" not in message and len(message) < 600
        assert _stored(boss) == before
    grown = {k for k, v in counters.snapshot().items() if v > counted.get(k, 0)}
    known = {"api.tasks.bad_request", "api.error.UsageError", "api.error.NotFound"}
    assert grown & (known | {"api.malformed_json"}), grown


def test_an_oversized_or_mistyped_body_is_refused(shared_api: TaskApi) -> None:
    with shared_api.as_("boss", "core", "coordinator") as boss:
        before = boss.get("/tasks").json()
        counted = counters.snapshot().get("api.body_too_large", 0)
        huge = {"team": "core", "title": "t", "description": "d" * 2_000_000}
        message = boss.post("/tasks", json=huge)
        assert message.status_code == 413
        assert message.json()["error"].endswith(
            "past the limit of 1048576 bytes for POST /tasks: send less"
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: the size is counted as it comes
            yield b'{"team": "core", "title": "t", "description": "'
            for _ in range(40):
                yield b"d" * 65536
            yield b'"}'

        streamed = boss.post("/tasks", content=chunks(), headers=JSON)
        assert streamed.status_code == 413, streamed.text
        after = counters.snapshot().get("api.body_too_large", 0)
        assert after == counted + 2
        form = boss.post("/tasks", data={"team": "core", "title": "t"})
        assert form.status_code == 415, form.text
        assert form.json()["error"].startswith("POST /tasks takes a JSON body")
        described = {"team": "core", "title": "t", "description": "d" * 20_001}
        assert "description:" in boss.post("/tasks", json=described).json()["error"]
        assert boss.get("/tasks").json() == before
