"""The coordination routes over HTTP on a real uvicorn: who may do what, and bad input
(unknown objects, duplicates, path traversal in names) answered with one clear line and
nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from coord_server import Served

from flotilla import counters


def _setup(served: Served, repo: str) -> None:
    with served.http(served.token("root", "default", "coordinator")) as admin:
        for body in (
            {"name": "alpha", "project": repo, "lead": "boss"},
            {"name": "beta", "project": repo, "lead": "other"},
        ):
            assert admin.post("/teams", json=body).status_code == 200
        assert admin.post("/swarms", json={"name": "hive", "goal": "g", "max_size": 3}).is_success


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert isinstance(message, str) and "\n" not in message
    return message


def test_every_coordination_route_needs_a_token_over_tcp(served: Served, project: Path) -> None:
    with served.http() as anonymous:
        for method, path in [
            ("GET", "/teams"),
            ("POST", "/teams"),
            ("POST", "/swarms/hive/posts"),
            ("GET", "/swarms/hive/posts"),
            ("POST", "/checkpoints"),
        ]:
            answer = anonymous.request(method, path, params={"project": str(project)}, json={})
            assert answer.status_code == 401, (method, path, answer.text)


def test_roles_decide_and_a_token_acts_for_itself_and_its_team(
    served: Served, project: Path, env: dict[str, str]
) -> None:
    _setup(served, str(project))
    before = counters.snapshot()
    with served.http(served.token("watcher", "alpha", "monitor")) as monitor:
        assert monitor.get("/swarms/hive/posts").status_code == 200
        message = _error(monitor.post("/swarms/hive/posts", json={"topic": "t", "body": "x"}), 403)
        assert "'monitor' may not 'blackboard_post'" in message
    with served.http(served.token("w1", "alpha", "worker")) as worker:
        posted = worker.post("/swarms/hive/posts", json={"topic": "t", "body": "x", "author": "w1"})
        assert posted.json()["author"] == "w1"
        forged = worker.post("/swarms/hive/posts", json={"topic": "t", "body": "y", "author": "w2"})
        assert "'w1' (worker) may act only for itself, not for 'w2'" in _error(forged, 403)
        assert _error(worker.post("/teams/alpha/spawn", json={"name": "x", "prompt": "p"}), 403)
    with served.http(served.token("other", "beta", "team-lead")) as stranger:
        spawn = {"name": "sneaky", "prompt": "p", "env": env}
        message = _error(stranger.post("/teams/alpha/spawn", json=spawn), 403)
        assert "agent 'other' of team 'beta' may not act on team 'alpha'" in message
        assert stranger.post("/swarms/hive/join", json={"agent": "w9"}).json()["joined"]
    with served.http(served.token("boss", "alpha", "team-lead")) as lead:
        status = lead.get("/teams/alpha").json()
        assert [m["agent"] for m in status["members"]] == ["boss"]  # nothing of `sneaky`
        assert lead.get("/swarms/hive/posts").json()["posts"][0]["body"] == "x"
        assert len(lead.get("/swarms/hive/posts").json()["posts"]) == 1
    after = counters.snapshot()
    assert after.get("auth.forbidden_team", 0) == before.get("auth.forbidden_team", 0) + 1
    assert after.get("auth.forbidden_agent", 0) == before.get("auth.forbidden_agent", 0) + 1


def _stored(admin: httpx.Client, repo: str) -> dict[str, Any]:
    return {
        "teams": admin.get("/teams").json(),
        "swarms": admin.get("/swarms").json(),
        "posts": admin.get("/swarms/hive/posts").json(),
        "checkpoints": admin.get("/checkpoints", params={"project": repo}).json(),
        "workers": admin.get("/workers", params={"project": repo}).json(),
    }


BAD_INPUT: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    ("POST", "/teams", {"name": "../x", "project": "{repo}"}, 400, "team name '../x'"),
    ("POST", "/teams", {"name": "alpha", "project": "{repo}"}, 400, "already exists"),
    ("POST", "/teams", {"name": "gamma", "project": "/nonexistent"}, 400, "not a git"),
    ("GET", "/teams/ghost", None, 404, "no team named 'ghost'"),
    ("POST", "/teams/ghost/members", {"agent": "a"}, 404, "no team named 'ghost'"),
    ("POST", "/teams/alpha/members", {"agent": "a", "role": "god"}, 400, "unknown role"),
    ("POST", "/teams/alpha/members", {"agent": "../a"}, 400, "agent name '../a'"),
    ("POST", "/teams/alpha/spawn", {"name": "../w", "prompt": "p"}, 400, "agent name"),
    ("POST", "/teams/alpha/spawn", {"name": "w", "prompt": " "}, 400, "prompt is empty"),
    ("POST", "/swarms", {"name": "../s", "goal": "g", "max_size": 2}, 400, "swarm name"),
    ("POST", "/swarms", {"name": "hive", "goal": "g", "max_size": 2}, 400, "already exists"),
    ("POST", "/swarms", {"name": "s", "goal": "g", "max_size": 0}, 400, "maximum size"),
    ("POST", "/swarms", {"name": "s", "goal": "g", "max_size": 2, "team": "ghost"}, 404, "ghost"),
    ("POST", "/swarms/ghost/join", {"agent": "a"}, 404, "no swarm named 'ghost'"),
    ("POST", "/swarms/hive/leave", {"agent": "a"}, 400, "not a member"),
    ("POST", "/swarms/hive/posts", {"topic": "../t", "body": "x"}, 400, "topic name"),
    ("POST", "/swarms/ghost/posts", {"topic": "t", "body": "x"}, 404, "no swarm named"),
    ("GET", "/swarms/hive/posts?since=-1", None, 400, "cursor"),
    ("GET", "/swarms/hive/posts?limit=5000", None, 400, "read limit"),
    ("POST", "/checkpoints", {"name": "../c", "worker": "w"}, 400, "checkpoint name"),
    ("POST", "/checkpoints", {"name": "c", "worker": "ghost"}, 404, "no worker named"),
    ("GET", "/checkpoints/ghost", None, 404, "no checkpoint named 'ghost'"),
    ("POST", "/checkpoints/ghost/restore", {"name": "w2"}, 404, "no checkpoint named"),
    ("POST", "/checkpoints/..%2Fc/restore", {"name": "w2"}, 400, "contains a path separator"),
]


def test_bad_input_is_one_clear_line_and_stores_nothing(served: Served, project: Path) -> None:
    repo = str(project)
    _setup(served, repo)
    with served.http(served.token("root", "default", "coordinator")) as admin:
        before = _stored(admin, repo)
        for method, target, body, status, message in BAD_INPUT:
            path, _, query = target.partition("?")
            params = {"project": repo, **dict(parse_qsl(query))}
            if body is not None:
                body = {
                    k: v.replace("{repo}", repo) if isinstance(v, str) else v
                    for k, v in body.items()
                }
            answer = admin.request(method, path, params=params, json=body)
            assert answer.status_code == status, (method, target, answer.text)
            if message:
                assert message in _error(answer, status), (method, target)
        assert _stored(admin, repo) == before
