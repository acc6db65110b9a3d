"""`fleet mcp` end to end: the SDK's own stdio client spawns it as a real subprocess with a
private state home; it starts the real daemon, which runs scripted agents in real git
worktrees."""

from __future__ import annotations

import pytest
from e2e_support import Fleet, git
from mcp_support import (
    REQUIRED_TOOLS,
    WRITE_HELLO,
    call,
    fleet_serve,
    refused,
    stdio_session,
    token_for,
    use_scripted_agent,
    wait_worker,
)

pytestmark = pytest.mark.slow

SLEEPER = '[[steps]]\naction = "sleep"\nseconds = 60\nheartbeat = 0.5\n'

TWO_STAGES = {
    "name": "two-stages",
    "stages": [
        {"name": "first", "agent": "scripted", "prompt": "{task_prompt}"},
        {
            "name": "second",
            "agent": "scripted",
            "depends_on": ["first"],
            "prompt": "after {stages.first.summary}",
        },
    ],
}


async def test_every_tool_is_listed_with_a_precise_input_schema(fleet: Fleet) -> None:
    async with stdio_session(fleet) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= REQUIRED_TOOLS, REQUIRED_TOOLS - set(tools)
    for tool in tools.values():
        schema = tool.input_schema
        assert schema["type"] == "object", tool.name
        assert "ctx" not in schema.get("properties", {}), tool.name  # injected, not asked
        assert tool.description and len(tool.description) > 30, tool.name
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    create = tools["create_worker"].input_schema
    assert sorted(create["required"]) == ["name", "prompt"]
    assert create["properties"]["prompt"]["minLength"] == 1
    states = tools["list_workers"].input_schema
    assert "succeeded" in str(states)  # the worker states are an enum, not free text
    assert tools["get_worker_status"].annotations.read_only_hint is True
    assert tools["cleanup_worker"].annotations.destructive_hint is True


async def test_a_worker_from_creation_to_cleanup(fleet: Fleet) -> None:
    use_scripted_agent(fleet.repo, WRITE_HELLO)
    async with stdio_session(fleet) as client:
        health = await call(client, "healthcheck")  # starts the daemon of this state home
        assert health["status"] == "ok"
        created = await call(client, "create_worker", name="hello", prompt="greet")
        assert created["branch"] == "flotilla/hello" and created["agent"] == "scripted"
        worker = await wait_worker(client, "hello")
        assert worker["state"] == "succeeded", worker
        listed = await call(client, "list_workers", state=["succeeded"])
        assert [w["name"] for w in listed["workers"]] == ["hello"]
        result = await call(client, "collect_worker_result", name="hello", include_diff=True)
        assert [f["path"] for f in result["files"]] == ["hello.txt"]
        assert result["summary"] == "Wrote hello.txt." and result["outcome"] == "success"
        assert "+hello" in result["diff"]
        assert result["input_tokens"] == 100 and result["output_tokens"] == 20
        reply = await call(client, "send_prompt", name="hello", text="note this")
        assert reply["status"] == "queued", reply  # a finished agent: its next turn
        assert (await wait_worker(client, "hello"))["state"] == "succeeded"
        again = await call(client, "collect_worker_result", name="hello")
        assert {f["path"] for f in again["files"]} == {"hello.txt", "notes.md"}
        removed = await call(client, "cleanup_worker", name="hello")
        assert removed["name"] == "hello"
        assert (await call(client, "list_workers"))["workers"] == []
    assert "flotilla/hello" not in git(fleet.repo, "branch", "--list")


async def test_an_unknown_worker_is_a_tool_error_with_the_apis_message(fleet: Fleet) -> None:
    async with stdio_session(fleet) as client:
        message = await refused(client, "get_worker_status", name="nope")
        assert "no worker named 'nope' in this project" in message
        message = await refused(client, "collect_worker_result", name="..")
        assert "'..' is not a valid name" in message  # never reaches a URL as a path
        message = await refused(client, "create_worker", one_line=False, name="x", prompt="")
        assert "prompt" in message  # the input schema refuses it before the API


async def test_a_running_worker_is_not_cleaned_up_but_can_be_cancelled(fleet: Fleet) -> None:
    use_scripted_agent(fleet.repo, SLEEPER)
    async with stdio_session(fleet) as client:
        await call(client, "create_worker", name="sleepy", prompt="sleep")
        message = await refused(client, "cleanup_worker", name="sleepy")
        assert "worker sleepy is still " in message  # queued, starting or running
        assert "cancel_worker" in message
        stopped = await call(client, "cancel_worker", name="sleepy")
        assert stopped["state"] == "cancelled"
        assert (await call(client, "list_workers"))["workers"] == []
    assert "flotilla/sleepy" in git(fleet.repo, "branch", "--list")  # kept by default


async def test_a_workflow_runs_and_reports_through_the_tools(fleet: Fleet) -> None:
    use_scripted_agent(fleet.repo, WRITE_HELLO)
    async with stdio_session(fleet) as client:
        bad = {
            "name": "bad",
            "stages": [{"name": "a", "agent": "scripted", "prompt": "x", "depends_on": ["ghost"]}],
        }
        message = await refused(client, "create_workflow", workflow=bad, task_prompt="t")
        assert "ghost" in message
        assert (await call(client, "list_workflows"))["workflows"] == []  # nothing started
        started = await call(client, "create_workflow", workflow=TWO_STAGES, task_prompt="go")
        assert [s["name"] for s in started["stages"]] == ["first", "second"]
        status = await call(client, "get_workflow_status", workflow=started["id"], wait_s=90)
        assert status["state"] == "succeeded", status
        assert {s["name"]: s["state"] for s in status["stages"]} == {
            "first": "succeeded",
            "second": "succeeded",
        }
        listed = await call(client, "list_workflows", state=["succeeded"])
        assert [w["id"] for w in listed["workflows"]] == [started["id"]]
        result = await call(client, "collect_workflow_result", workflow=started["id"])
        assert set(result["stages"]) == {"first", "second"}
        cleaned = await call(client, "cleanup_workflow", workflow=started["id"])
        assert cleaned
        message = await refused(client, "cancel_workflow", workflow="wf-none")
        assert "no workflow 'wf-none'" in message


async def test_remote_mode_acts_with_the_tokens_role(fleet: Fleet) -> None:
    """FLOTILLA_URL + FLOTILLA_TOKEN: the tools go over TCP as the token's agent; the API's
    permission check is what refuses, and its message is what the model reads."""
    use_scripted_agent(fleet.repo, WRITE_HELLO)
    with fleet_serve(fleet) as url:
        monitor = token_for(fleet, url, "monitor", agent="watcher")
        env = {"FLOTILLA_URL": url, "FLOTILLA_TOKEN": monitor}
        async with stdio_session(fleet, env=env) as client:
            assert (await call(client, "healthcheck"))["status"] == "ok"
            message = await refused(client, "create_worker", name="nope", prompt="x")
            assert "role 'monitor' may not 'spawn'" in message
            assert (await call(client, "list_workers"))["workers"] == []
        env["FLOTILLA_TOKEN"] = "not-a-token"
        async with stdio_session(fleet, env=env) as client:
            assert "invalid token" in await refused(client, "list_workers")


async def test_an_agent_running_fleet_mcp_acts_as_itself(fleet: Fleet) -> None:
    """Run by an agent Flotilla launched ($FLOTILLA_WORKER), `fleet mcp` posts, sends and
    reads as that agent, as the `fleet` commands do."""
    use_scripted_agent(fleet.repo, WRITE_HELLO)
    async with stdio_session(fleet, env={"FLOTILLA_WORKER": "lead"}) as client:
        first = await client.call_tool("team_status", {})
        assert not first.is_error, first.content  # the daemon serves the team routes
        await call(client, "team_create", name="core", lead="lead")
        await call(client, "team_spawn", team="core", name="w1", prompt="build")
        assert (await wait_worker(client, "w1"))["state"] == "succeeded"
        await call(client, "swarm_create", name="hunt", goal="find bugs", max_size=2)
        post = await call(client, "blackboard_post", swarm="hunt", topic="plan", body="split")
        assert post["author"] == "lead"
        sent = await call(client, "send_message", to="w1", body="look at app.py")
        assert sent["messages"][0]["sender"] == "lead"
        inbox = await call(client, "read_inbox", agent="w1")
        assert [m["body"] for m in inbox["messages"]] == ["look at app.py"]
        assert (await call(client, "read_inbox"))["agent"] == "lead"  # yours by default
        task = await call(client, "task_create", team="core", title="review w1")
        claimed = (await call(client, "task_claim", team="core"))["task"]
        assert (claimed["id"], claimed["assignee"]) == (task["id"], "lead")
        done = await call(
            client, "task_update", task_id=task["id"], status="done", note="looked", result="ok"
        )
        assert done["state"] == "done" and done["result"] == "ok"
