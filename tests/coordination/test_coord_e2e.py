"""Teams, the blackboard and checkpoints end to end over HTTP: a real uvicorn on a free
loopback port, the daemon's app with the coordination routes, a real supervisor, real git,
and the scripted agent (no model)."""

from __future__ import annotations

from pathlib import Path

from coord_server import Served
from coord_support import git


def test_checkpoint_and_restore_continue_the_work_in_a_new_worker(
    served: Served, project: Path, env: dict[str, str]
) -> None:
    repo = str(project)
    lead = served.token("boss", "alpha", "team-lead")
    with served.http(lead) as http:
        assert http.post(
            "/teams", json={"name": "alpha", "project": repo, "lead": "boss"}
        ).is_success
        spawned = http.post(
            "/teams/alpha/spawn", json={"name": "w1", "prompt": "build part one", "env": env}
        )
        assert spawned.status_code == 200, spawned.text
        first = served.wait_worker(http, repo, "w1")
        assert first["state"] == "succeeded", first
        session = first["session_id"]
        assert session

        saved = http.post(
            "/checkpoints",
            params={"project": repo},
            json={"name": "part-one", "worker": "w1", "notes": "part two is next"},
        )
        assert saved.status_code == 200, saved.text
        checkpoint = saved.json()
        assert checkpoint["session_id"] == session
        assert checkpoint["summary"] == "did part one"
        assert checkpoint["created_by"] == "boss"
        commit = checkpoint["commit"]
        files = git(project, "ls-tree", "--name-only", commit).split()
        assert {"feature.txt", "draft.txt"} <= set(files)  # the draft was committed first

        # The worker goes, its branch with it: the checkpoint's own ref keeps the commit.
        assert http.delete("/workers/w1", params={"project": repo}).is_success
        assert "flotilla/w1" not in git(project, "branch", "--list")

        restored = http.post(
            "/checkpoints/part-one/restore",
            params={"project": repo},
            json={"name": "w2", "prompt": "add part two", "env": env},
        )
        assert restored.status_code == 200, restored.text
        assert restored.json()["resumed_session"] == session
        second = served.wait_worker(http, repo, "w2")
        assert second["state"] == "succeeded", second
        listed = http.get("/checkpoints", params={"project": repo}).json()
        assert [c["name"] for c in listed] == ["part-one"]

    worktree = Path(second["worktree"])
    assert second["branch"] == "flotilla/w2"
    assert git(worktree, "branch", "--show-current").strip() == "flotilla/w2"
    assert git(worktree, "rev-parse", "HEAD~1").strip() == commit  # one new commit on top
    assert (worktree / "draft.txt").read_text() == "uncommitted draft\n"
    # The agent resumed the checkpoint's session: its follow-up steps ran, in that session.
    assert (worktree / "feature.txt").read_text() == (
        f"part one\npart two: add part two (session {session})\n"
    )
    assert second["session_id"] == session
    assert [c.split(" ", 1)[1] for c in second["result"]["commits"]] == ["part two"]


def test_team_status_follows_its_workers_and_the_board_is_shared(
    served: Served, project: Path, env: dict[str, str]
) -> None:
    repo = str(project)
    with served.http(served.token("boss", "alpha", "team-lead")) as lead:
        lead.post("/teams", json={"name": "alpha", "project": repo, "lead": "boss"})
        for name in ("w1", "w2"):
            answer = lead.post(
                "/teams/alpha/spawn", json={"name": name, "prompt": "work", "env": env}
            )
            assert answer.status_code == 200, answer.text
        for name in ("w1", "w2"):
            served.wait_worker(lead, repo, name)
        status = lead.get("/teams/alpha").json()
        assert status["worker_states"] == {"succeeded": 2}
        states = {m["agent"]: (m["role"], m["worker"]) for m in status["members"]}
        assert states["boss"] == ("team-lead", None)
        assert states["w1"][0] == "worker" and states["w1"][1]["state"] == "succeeded"
        swarm = lead.post("/swarms", json={"name": "hive", "goal": "ship it", "max_size": 2})
        assert swarm.status_code == 200, swarm.text

    cursor = 0
    for agent in ("w1", "w2"):
        with served.http(served.token(agent, "alpha", "worker")) as worker:
            assert worker.post("/swarms/hive/join", json={}).json()["joined"] is True
            posted = worker.post(
                "/swarms/hive/posts", json={"topic": "findings", "body": f"{agent} found x"}
            )
            assert posted.status_code == 200, posted.text
            assert posted.json()["author"] == agent  # the token's agent, not a claim
    with served.http(served.token("w3", "alpha", "worker")) as late:
        full = late.post("/swarms/hive/join", json={})
        assert full.status_code == 400
        assert "swarm 'hive' is full (2 of 2 members)" in full.json()["error"]
        page = late.get("/swarms/hive/posts", params={"since": cursor}).json()
        assert [(p["author"], p["body"]) for p in page["posts"]] == [
            ("w1", "w1 found x"),
            ("w2", "w2 found x"),
        ]
        assert late.get("/swarms/hive/posts", params={"since": page["cursor"]}).json() == {
            "swarm": "hive",
            "posts": [],
            "cursor": page["cursor"],
        }
