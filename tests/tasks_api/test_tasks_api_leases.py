"""Leases over HTTP: a holder that stops renewing loses the task to the daemon's periodic
sweep (not to a claim that happens to run it), which its history and the event log say;
the late holder is then refused, and another agent takes the task."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from tasks_api_server import TaskApi

from flotilla import counters


def _wait_for(read: Any, done: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value):
        assert time.monotonic() < deadline, f"timed out; last seen: {value}"
        time.sleep(0.05)
        value = read()
    return value


def test_an_expired_lease_returns_the_task_and_says_so(api: TaskApi) -> None:
    with api.as_("lead", "core", "team-lead") as lead:
        task = lead.post("/tasks", json={"team": "core", "title": "slow work"}).json()
    with api.as_("w1", "core", "worker") as w1, api.as_("w2", "core", "worker") as w2:
        claimed = w1.post("/tasks/claim", json={"lease_s": 0.5}).json()["task"]
        assert claimed["id"] == task["id"]
        sweeps = api.side.sweeps
        requeued = _wait_for(
            lambda: w1.get(f"/tasks/{task['id']}").json(), lambda t: t["state"] == "queued"
        )
        assert api.side.sweeps > sweeps  # the periodic sweep did it: nobody claimed meanwhile
        assert (requeued["assignee"], requeued["attempts"]) == (None, 1)
        history = w1.get(f"/tasks/{task['id']}/history").json()
        assert [e["kind"] for e in history] == ["created", "claimed", "lease_expired"]
        assert history[-1]["message"] == "lease of w1 expired; back in the queue"
        assert history[-1]["detail"]["holder"] == "w1"
        events = _wait_for(
            lambda: w1.get("/events", params={"kind": "task.lease_expired"}).json(),
            lambda found: len(found) == 1,
        )
        assert (events[0]["subject"], events[0]["team"]) == (task["id"], "core")
        assert events[0]["payload"]["state"] == "queued"
        late = w1.post(f"/tasks/{task['id']}/heartbeat", json={})
        assert late.status_code == 409, late.text
        assert "not claimed: nobody holds it to heartbeat" in late.json()["error"]
        again = w2.post("/tasks/claim", json={}).json()["task"]
        assert (again["id"], again["assignee"], again["attempts"]) == (task["id"], "w2", 2)
        refused = w1.post(f"/tasks/{task['id']}/complete", json={"result": "late"})
        assert refused.status_code == 403, refused.text
        assert w2.post(f"/tasks/{task['id']}/complete", json={}).json()["state"] == "done"


def test_heartbeats_keep_a_short_lease_alive(api: TaskApi) -> None:
    with api.as_("lead", "core", "team-lead") as lead:
        task = lead.post("/tasks", json={"team": "core", "title": "kept"}).json()
    with api.as_("w1", "core", "worker") as w1:
        w1.post("/tasks/claim", json={"lease_s": 0.6})
        start = api.side.sweeps
        while api.side.sweeps < start + 8:  # well past the first lease, sweeps running
            renewed = w1.post(f"/tasks/{task['id']}/heartbeat", json={"lease_s": 0.6})
            assert renewed.status_code == 200, renewed.text
            time.sleep(0.1)
        kinds = [e["kind"] for e in w1.get(f"/tasks/{task['id']}/history").json()]
        assert kinds == ["created", "claimed"]  # heartbeats are not history entries


def test_a_failing_sweep_is_counted_and_the_loop_goes_on(api: TaskApi, tmp_path: Path) -> None:
    """The sweep's query fails for real (its table is renamed away under it), is counted,
    and once the table is back the next sweeps expire leases as before."""
    with api.as_("lead", "core", "team-lead") as lead:
        task = lead.post("/tasks", json={"team": "core", "title": "t"}).json()
        lead.post(f"/tasks/{task['id']}/assign", json={"assignee": "w1", "lease_s": 1.5})
        failed = counters.snapshot().get("tasks.lease_sweep_failed", 0)
        with sqlite3.connect(tmp_path / "state.db") as db:
            db.execute("ALTER TABLE tasks RENAME TO tasks_away")
        renamed_at = time.time()
        try:
            _wait_for(
                lambda: counters.snapshot().get("tasks.lease_sweep_failed", 0),
                lambda n: n >= failed + 2,
            )
        finally:
            with sqlite3.connect(tmp_path / "state.db") as db:
                db.execute("ALTER TABLE tasks_away RENAME TO tasks")
        _wait_for(
            lambda: lead.get(f"/tasks/{task['id']}").json()["state"],
            lambda state: state == "queued",
        )
        expired = lead.get(f"/tasks/{task['id']}/history").json()[-1]
        assert expired["kind"] == "lease_expired" and expired["at"] > renamed_at
