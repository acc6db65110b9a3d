"""50 agents claim concurrently over HTTP (each its own token and connection) from a queue
of 200 tasks, on SQLite and on PostgreSQL: every task is claimed exactly once, by the agent
that was told it got it, and the store's history and the event log agree."""

from __future__ import annotations

import asyncio
import collections
import time

import httpx
from tasks_api_server import TaskApi

CLAIMERS = 50
TASKS = 200


async def _claim_all(api: TaskApi, agent: str) -> list[str]:
    """Claim until the queue is empty; the ids this agent was given."""
    headers = {"Authorization": f"Bearer {api.token(agent, 'race', 'worker')}"}
    got: list[str] = []
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=120) as client:
        for _ in range(TASKS + 1):  # bounded: no agent can get more than every task
            answer = await client.post("/tasks/claim", json={"lease_s": 600})
            assert answer.status_code == 200, answer.text
            task = answer.json()["task"]
            if task is None:
                return got
            assert task["assignee"] == agent
            got.append(task["id"])
    raise AssertionError(f"{agent} was handed more than {TASKS} tasks")


async def _race(api: TaskApi) -> tuple[dict[str, list[str]], float]:
    agents = [f"w{i:02d}" for i in range(CLAIMERS)]
    started = time.monotonic()
    results = await asyncio.gather(*(_claim_all(api, agent) for agent in agents))
    return dict(zip(agents, results, strict=True)), time.monotonic() - started


def test_fifty_http_claimers_never_claim_a_task_twice(any_api: TaskApi) -> None:
    api = any_api
    with api.as_("lead", "race", "team-lead") as lead:
        created = {
            lead.post(
                "/tasks", json={"team": "race", "title": f"job {n}", "priority": n % 7}
            ).json()["id"]
            for n in range(TASKS)
        }
        by_agent, took = asyncio.run(_race(api))
        handed = [task_id for ids in by_agent.values() for task_id in ids]
        duplicates = [t for t, n in collections.Counter(handed).items() if n > 1]
        assert duplicates == []
        assert set(handed) == created
        busy = sum(1 for ids in by_agent.values() if ids)
        assert busy > 1, "the claims were not concurrent at all"
        stored = {t["id"]: t for t in lead.get("/tasks", params={"team": "race"}).json()}
        holder_of = {task_id: agent for agent, ids in by_agent.items() for task_id in ids}
        assert {t: s["assignee"] for t, s in stored.items()} == holder_of
        assert {s["state"] for s in stored.values()} == {"claimed"}
        assert {s["attempts"] for s in stored.values()} == {1}
        events = lead.get("/events", params={"kind": "task.claimed", "limit": 1000}).json()
        assert sorted(e["subject"] for e in events) == sorted(created)
        one = lead.get(f"/tasks/{handed[0]}/history").json()
        assert [e["kind"] for e in one] == ["created", "claimed"]
    print(f"{TASKS} claims by {CLAIMERS} HTTP clients in {took:.2f}s ({TASKS / took:.0f}/s)")
