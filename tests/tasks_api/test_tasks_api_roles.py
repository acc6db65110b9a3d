"""Tasks over HTTP on a real uvicorn with auth: each role does what the matrix lets it,
a token acts only for its own agent and team, only the holder finishes a task, and the
history and the event log say what happened."""

from __future__ import annotations

from typing import Any

import httpx
from tasks_api_server import TaskApi

from flotilla import counters


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message
    return message


def _create(client: httpx.Client, title: str, **fields: Any) -> dict[str, Any]:
    answer = client.post("/tasks", json={"team": "core", "title": title, **fields})
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()
    return task


def test_a_lead_hands_out_work_a_worker_claims_and_completes_it(api: TaskApi) -> None:
    with api.as_("lead", "core", "team-lead") as lead, api.as_("w1", "core", "worker") as w1:
        low = _create(lead, "write docs", labels=["docs"], priority=1)
        high = _create(lead, "fix the parser", labels=["bug"], priority=5)
        assert high["created_by"] == "lead" and high["state"] == "queued"
        claimed = w1.post("/tasks/claim", json={}).json()["task"]
        assert (claimed["id"], claimed["assignee"]) == (high["id"], "w1")  # priority first
        renewed = w1.post(f"/tasks/{high['id']}/heartbeat", json={"lease_s": 900}).json()
        assert renewed["lease_expires_at"] > claimed["lease_expires_at"]
        noted = w1.patch(f"/tasks/{high['id']}", json={"note": "halfway"}).json()
        assert noted["version"] == renewed["version"]  # a note changes no field
        done = w1.post(f"/tasks/{high['id']}/complete", json={"result": {"pr": 7}}).json()
        assert (done["state"], done["result"], done["assignee"]) == ("done", {"pr": 7}, "w1")
        assert [t["id"] for t in lead.get("/tasks", params={"state": "done"}).json()] == [
            high["id"]
        ]
        queued = lead.get("/tasks", params={"team": "core", "state": "queued,claimed"}).json()
        assert [t["id"] for t in queued] == [low["id"]]
        assert [t["id"] for t in lead.get("/tasks", params={"label": "docs"}).json()] == [low["id"]]
        history = w1.get(f"/tasks/{high['id']}/history").json()
        assert [e["kind"] for e in history] == ["created", "claimed", "note", "done"]
        assert [e["actor"] for e in history] == ["lead", "w1", "w1", "w1"]
        assert history[2]["message"] == "halfway"
        events = lead.get("/events", params={"kind": "task", "subject": high["id"]}).json()
        assert [e["kind"] for e in events] == [
            "task.created",
            "task.claimed",
            "task.note",
            "task.done",
        ]
        assert {e["team"] for e in events} == {"core"}
        assert events[-1]["payload"]["result"] == {"pr": 7}


def test_a_monitor_reads_but_cannot_create_claim_or_finish(api: TaskApi) -> None:
    with api.as_("lead", "core", "team-lead") as lead:
        task = _create(lead, "read me")
    with api.as_("eye", "core", "monitor") as monitor:
        assert monitor.get(f"/tasks/{task['id']}").json()["readiness"] == "ready"
        assert len(monitor.get("/tasks").json()) == 1
        for method, path, body in [
            ("POST", "/tasks", {"team": "core", "title": "x"}),
            ("POST", "/tasks/claim", {}),
            ("POST", f"/tasks/{task['id']}/assign", {"assignee": "eye"}),
            ("POST", f"/tasks/{task['id']}/complete", {}),
            ("POST", f"/tasks/{task['id']}/fail", {"reason": "no"}),
            ("PATCH", f"/tasks/{task['id']}", {"title": "y"}),
        ]:
            message = _error(monitor.request(method, path, json=body), 403)
            assert message.startswith("role 'monitor' may not 'task_")
    with httpx.Client(base_url=api.url) as anonymous:
        assert "no token" in _error(anonymous.post("/tasks/claim", json={}), 401)
        assert _error(anonymous.get("/tasks"), 401)
    with api.as_("lead", "core", "team-lead") as lead:
        assert lead.get(f"/tasks/{task['id']}").json()["version"] == task["version"]
        assert lead.get("/tasks").json()[0]["state"] == "queued"


def test_a_worker_acts_only_as_itself_in_its_own_team(api: TaskApi) -> None:
    before = counters.snapshot()
    with api.as_("lead", "core", "team-lead") as lead:
        task = _create(lead, "mine")
        other = _create(lead, "theirs")
        message = _error(lead.post("/tasks", json={"team": "ops", "title": "x"}), 403)
        assert message == "agent 'lead' of team 'core' may not act on the tasks of team 'ops'"
    with api.as_("w1", "core", "worker") as w1, api.as_("w2", "core", "worker") as w2:
        forged = w1.post("/tasks/claim", json={"claimer": "w2"})
        assert _error(forged, 403) == "agent 'w1' (worker) may act only for itself, not for 'w2'"
        elsewhere = w1.post("/tasks/claim", json={"team": "ops"})
        assert "may not act on the tasks of team 'ops'" in _error(elsewhere, 403)
        assert w1.post("/tasks/claim", json={"team": "core"}).json()["task"]["id"] == task["id"]
        stolen = w2.post(f"/tasks/{task['id']}/complete", json={"result": "mine now"})
        message = _error(stolen, 403)
        assert message == (
            f"task {task['id']} is held by w1, not w2: only its holder (or a coordinator) "
            "may complete it"
        )
        for path, body in [
            ("heartbeat", {}),
            ("fail", {"reason": "sabotage"}),
            ("release", {}),
            ("complete", {"actor": "w1"}),
        ]:
            assert _error(w2.post(f"/tasks/{task['id']}/{path}", json=body), 403), path
        assert _error(w2.patch(f"/tasks/{task['id']}", json={"note": "hi"}), 403)
        assert w1.get(f"/tasks/{task['id']}").json()["state"] == "claimed"
        not_claimed = w2.post(f"/tasks/{other['id']}/complete", json={})
        assert "not claimed: nobody holds it" in _error(not_claimed, 409)
    with api.as_("x1", "ops", "worker") as stranger:
        assert stranger.post("/tasks/claim", json={}).json() == {"task": None}  # ops is empty
        assert _error(stranger.post(f"/tasks/{other['id']}/complete", json={}), 403)
    after = counters.snapshot()
    assert after.get("auth.not_holder", 0) == before.get("auth.not_holder", 0) + 5
    assert after.get("auth.forbidden_agent", 0) == before.get("auth.forbidden_agent", 0) + 2


def test_assignment_reassignment_and_a_coordinators_reach(api: TaskApi) -> None:
    with api.as_("lead", "core", "team-lead") as lead:
        task = _create(lead, "assigned work")
        assigned = lead.post(f"/tasks/{task['id']}/assign", json={"assignee": "w1"}).json()
        assert (assigned["state"], assigned["assignee"]) == ("claimed", "w1")
        again = lead.post(f"/tasks/{task['id']}/assign", json={"assignee": "w2"})
        assert "already claimed by w1" in _error(again, 409)
        taken = lead.post(f"/tasks/{task['id']}/assign", json={"assignee": "w2", "reassign": True})
        assert "may not reassign" in _error(taken, 403)
    with api.as_("other", "ops", "team-lead") as stranger:
        assert _error(stranger.post(f"/tasks/{task['id']}/assign", json={"assignee": "x"}), 403)
    with api.as_("boss", "hq", "coordinator") as boss:
        moved = boss.post(f"/tasks/{task['id']}/assign", json={"assignee": "w2", "reassign": True})
        assert moved.json()["assignee"] == "w2"
        renewed = boss.post(f"/tasks/{task['id']}/heartbeat", json={}).json()
        assert renewed["assignee"] == "w2"  # a coordinator renews whoever holds it
        changed = boss.patch(f"/tasks/{task['id']}", json={"priority": 9, "labels": ["urgent"]})
        assert (changed.json()["priority"], changed.json()["labels"]) == (9, ["urgent"])
        gating = boss.patch(f"/tasks/{task['id']}", json={"requires": ["gpu"]})
        assert "can change only while it is queued or failed" in _error(gating, 409)
        failed = boss.post(f"/tasks/{task['id']}/fail", json={"reason": "wrong approach"}).json()
        assert (failed["state"], failed["error"]) == ("failed", "wrong approach")
        requeued = boss.post(f"/tasks/{task['id']}/requeue", json={"reason": "retry"}).json()
        assert requeued["state"] == "queued"
        cancelled = boss.post(f"/tasks/{task['id']}/cancel", json={}).json()
        assert cancelled["state"] == "cancelled"
        kinds = [e["kind"] for e in boss.get(f"/tasks/{task['id']}/history").json()]
        assert kinds == [
            "created",
            "assigned",
            "assigned",
            "updated",
            "failed",
            "requeued",
            "cancelled",
        ]


def test_dependencies_show_in_readiness_and_gate_claims(api: TaskApi) -> None:
    with api.as_("lead", "core", "team-lead") as lead, api.as_("w1", "core", "worker") as w1:
        first = _create(lead, "schema")
        second = _create(lead, "queries", depends_on=[first["id"]], priority=100)
        shown = lead.get(f"/tasks/{second['id']}").json()
        assert shown["readiness"] == "waiting"
        assert shown["dependency_states"] == {first["id"]: "queued"}
        assert w1.post("/tasks/claim", json={}).json()["task"]["id"] == first["id"]
        assert w1.post("/tasks/claim", json={}).json() == {"task": None}
        w1.post(f"/tasks/{first['id']}/complete", json={})
        assert lead.get(f"/tasks/{second['id']}").json()["readiness"] == "ready"
        assert w1.post("/tasks/claim", json={}).json()["task"]["id"] == second["id"]
