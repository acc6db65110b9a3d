"""The dashboard's other views, fed live by the API while the page is open (a workflow's
graph of stages by depth, the tasks board, the messages and blackboard stream), and the
prompt and merge buttons."""

from __future__ import annotations

import re
from typing import Any

import pytest
from dashboard_support import FEATURE, LIVE_S, Served, open_dashboard, row
from e2e_support import git
from playwright.sync_api import expect

pytestmark = pytest.mark.slow

# plan -> (left, right) -> join; scripted agents without a script do a dry run and succeed
DIAMOND = {
    "name": "diamond",
    "task_prompt": "shape",
    "stages": [
        {"name": "plan", "agent": "scripted", "prompt": "plan"},
        {"name": "left", "agent": "scripted", "prompt": "l", "depends_on": ["plan"]},
        {"name": "right", "agent": "scripted", "prompt": "r", "depends_on": ["plan"]},
        {"name": "join", "agent": "scripted", "prompt": "j", "depends_on": ["left", "right"]},
    ],
}


def left_edge(graph: Any, stage: str) -> float:
    transform = graph.locator(f'g.node[data-stage="{stage}"]').get_attribute("transform")
    found = re.fullmatch(r"translate\(([\d.]+),([\d.]+)\)", transform or "")
    assert found, transform
    return float(found.group(1))


def column_of(page: Any, name: str) -> Any:
    return page.locator(f'#tasks [data-column="{name}"]')


def test_workflow_graph_tasks_board_and_stream_update_live(served: Served, page: Any) -> None:
    token = served.token("coordinator")
    open_dashboard(page, served, token)
    project = str(served.fleet.repo)
    with served.api(token) as api:
        started = api.post("/workflows", json={"project": project, "workflow": DIAMOND})
        assert started.status_code == 200, started.text
        graph = page.locator("#workflows-view svg.graph")
        expect(graph.locator("g.node")).to_have_count(4, timeout=LIVE_S)
        expect(graph.locator("path.edge")).to_have_count(4)
        join = graph.locator('g.node[data-stage="join"]')
        expect(join).to_have_class(re.compile(r"\bstate-succeeded\b"), timeout=30_000)
        x = {stage: left_edge(graph, stage) for stage in ("plan", "left", "right", "join")}
        assert x["plan"] < x["left"] == x["right"] < x["join"]  # one column per depth

        created = api.post("/tasks", json={"team": "red", "title": "write the docs"})
        assert created.status_code == 200, created.text
        task = created.json()["id"]
        expect(column_of(page, "queued")).to_contain_text("write the docs", timeout=LIVE_S)
        assert api.post("/tasks/claim", json={"team": "red"}).json()["task"]["id"] == task
        expect(column_of(page, "claimed")).to_contain_text("write the docs", timeout=LIVE_S)
        expect(column_of(page, "queued")).not_to_contain_text("write the docs")
        assert api.post(f"/tasks/{task}/complete", json={"result": "ok"}).status_code == 200
        expect(column_of(page, "done")).to_contain_text("write the docs", timeout=LIVE_S)

        workers = api.get("/workers", params={"project": project}).json()
        peer = next(w["name"] for w in workers if w["name"].endswith("-join"))
        sent = api.post(
            "/messages", json={"project": project, "to": peer, "body": "ping from the lead"}
        )
        assert sent.status_code == 200, sent.text
        stream = page.locator("#stream")
        expect(stream).to_contain_text("ping from the lead", timeout=LIVE_S)
        assert api.post("/swarms", json={"name": "hunt", "goal": "g", "max_size": 3}).is_success
        posted = api.post("/swarms/hunt/posts", json={"topic": "finding", "body": "found it"})
        assert posted.status_code == 200, posted.text
        # not necessarily the newest line: the message's own later events (delivered,
        # read) may come after the post
        expect(stream).to_contain_text("[finding] found it", timeout=LIVE_S)
    assert page.evaluate("window.loadedOnce") is True


def test_prompt_and_merge_from_the_page(served: Served, page: Any) -> None:
    open_dashboard(page, served, served.token("team-lead"))
    served.create("feature", FEATURE)
    expect(row(page, "feature").locator(".state")).to_have_text("succeeded", timeout=LIVE_S)
    row(page, "feature").click()
    expect(page.locator("#diff")).to_contain_text("+made by the agent", timeout=LIVE_S)

    page.click("#prompt-send")  # empty: refused by the page, nothing sent
    expect(page.locator("#notices .error")).to_contain_text("the prompt is empty")
    page.fill("#prompt-text", "remember the docs")
    page.click("#prompt-send")
    expect(page.locator("#notices")).to_contain_text("prompt feature: done")
    served.wait(
        "feature",
        "done with its follow-up turn",
        lambda w: w["attempt"] == 2 and w["state"] == "succeeded",
    )
    expect(page.locator("#transcript")).to_contain_text("noted: remember the docs", timeout=LIVE_S)
    expect(page.locator("#merge")).to_be_enabled(timeout=LIVE_S)

    page.click("#merge")
    expect(page.locator("#notices")).to_contain_text("merged flotilla/feature into main")
    assert git(served.fleet.repo, "show", "main:feature.txt") == "made by the agent\n"
    assert git(served.fleet.repo, "show", "main:notes.md") == "remember the docs\n"
