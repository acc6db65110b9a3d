"""The fast lane answers a well-formed, allowed request itself, and hands everything else
to FastAPI with its body intact, so refusals keep the API's one format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from flotilla.counters import snapshot
from flotilla.domain.errors import FlotillaError, NotFound
from flotilla.domain.roles import Permission, Role
from flotilla.server.apikeys import ApiKeys
from flotilla.server.auth import Authority, Principal, Tokens, install_auth, require, tag_listener
from flotilla.server.fastlane import FastRoute, compile_routes, install_fast_lane
from flotilla.server.limits import BodyLimits, install_limits

SECRET = "fast-lane-tests-secret-0123456789"


class NoteBody(BaseModel):
    text: str


class Calls:
    def __init__(self) -> None:
        self.by: list[str] = []  # "fast" or "fastapi", per answer given
        self.observed: list[tuple[str, str, int]] = []  # what the request metrics were told

    def observe_request(self, method: str, route: str, status: int, _: float | None) -> None:
        self.observed.append((method, route, status))


async def answer(calls: Calls, who: Principal, name: str, body: NoteBody) -> dict[str, Any]:
    """What the route does, for the route and the fast lane alike."""
    if name == "missing":
        raise NotFound(f"no note board named {name!r}")
    if name == "boom":
        raise RuntimeError("a bug in the answer")
    return {"board": name, "text": body.text, "by": who.agent}


def build(calls: Calls, home: Path) -> Any:
    tokens = Tokens(SECRET)
    authority = Authority(tokens, ApiKeys.at(home), "test", tcp_auth=True)
    app = FastAPI()
    install_auth(app, authority)
    install_limits(app, BodyLimits(default=1000))

    @app.exception_handler(FlotillaError)
    async def flotilla_error(_: Any, exc: FlotillaError) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.post("/boards/{name}/notes")
    async def post_note(
        name: str, body: NoteBody, who: Principal = Depends(require(Permission.BLACKBOARD_POST))
    ) -> dict[str, Any]:
        calls.by.append("fastapi")
        return await answer(calls, who, name, body)

    async def fast(who: Principal, params: dict[str, str], _: dict[str, str], body: Any) -> Any:
        result = await answer(calls, who, params["name"], body)
        calls.by.append("fast")
        return result

    routes = [FastRoute("POST", "/boards/{name}/notes", fast, NoteBody)]
    install_fast_lane(app, authority, routes, calls, BodyLimits(default=1000))
    return tag_listener(app, local=False), tokens


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Calls, Tokens]]:
    calls = Calls()
    app, tokens = build(calls, tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http, calls, tokens


def bearer(tokens: Tokens, role: str) -> dict[str, str]:
    token, _ = tokens.issue("ann", "crew", Role(role), 600)
    return {"Authorization": f"Bearer {token}"}


async def test_a_well_formed_allowed_request_is_answered_by_the_fast_lane(
    client: tuple[httpx.AsyncClient, Calls, Tokens],
) -> None:
    http, calls, tokens = client
    reply = await http.post(
        "/boards/b1/notes", json={"text": "hi"}, headers=bearer(tokens, "worker")
    )
    assert reply.status_code == 200
    assert reply.json() == {"board": "b1", "text": "hi", "by": "ann"}
    assert calls.by == ["fast"]
    assert calls.observed == [("POST", "/boards/{name}/notes", 200)]  # the route, not the path


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"text": "hi"}, 401),  # no token over TCP
        ({"Authorization": "Bearer not-a-token"}, {"text": "hi"}, 401),
        ("monitor", {"text": "hi"}, 403),  # a role without blackboard_post
        ("worker", {"txt": "hi"}, 422),  # the body does not fit the model
        ("worker", {"text": "x" * 2000}, 413),  # over the edge guard's limit
    ],
)
async def test_what_the_fast_lane_will_not_answer_fastapi_refuses(
    client: tuple[httpx.AsyncClient, Calls, Tokens],
    headers: dict[str, str] | str,
    body: dict[str, str],
    status: int,
) -> None:
    http, calls, tokens = client
    sent = bearer(tokens, headers) if isinstance(headers, str) else headers
    reply = await http.post("/boards/b1/notes", json=body, headers=sent)
    assert reply.status_code == status
    assert calls.by == []  # neither answered
    if status == 422:  # FastAPI got the body the fast lane had read: it names the field
        assert "text" in reply.text


async def test_a_refusal_raised_by_the_answer_is_given_by_fastapi(
    client: tuple[httpx.AsyncClient, Calls, Tokens],
) -> None:
    http, calls, tokens = client
    reply = await http.post(
        "/boards/missing/notes", json={"text": "hi"}, headers=bearer(tokens, "worker")
    )
    assert reply.status_code == 404
    assert "no note board named 'missing'" in reply.json()["error"]
    assert calls.by == ["fastapi"]  # tried in the fast lane, answered by the route


async def test_a_failing_answer_is_a_counted_500_and_is_not_run_again(
    client: tuple[httpx.AsyncClient, Calls, Tokens],
) -> None:
    http, calls, tokens = client
    before = snapshot().get("fastlane.failed", 0)
    reply = await http.post(
        "/boards/boom/notes", json={"text": "hi"}, headers=bearer(tokens, "worker")
    )
    assert reply.status_code == 500
    assert "internal error" in reply.json()["error"]
    assert calls.by == []  # FastAPI's route did not run it a second time
    assert snapshot().get("fastlane.failed", 0) == before + 1
    assert calls.observed == [("POST", "/boards/{name}/notes", 500)]


async def test_many_concurrent_requests_each_get_their_own_answer(
    client: tuple[httpx.AsyncClient, Calls, Tokens],
) -> None:
    http, calls, tokens = client
    headers = bearer(tokens, "worker")
    replies = await asyncio.gather(
        *(
            http.post(f"/boards/b{i}/notes", json={"text": f"t{i}"}, headers=headers)
            for i in range(40)
        )
    )
    assert [r.json()["text"] for r in replies] == [f"t{i}" for i in range(40)]
    assert calls.by == ["fast"] * 40


def test_a_fast_route_needs_a_guarded_api_route_of_the_same_method_and_path() -> None:
    app = FastAPI()

    async def fast(*_: Any) -> Any:
        return None

    with pytest.raises(RuntimeError, match="no guarded API route"):
        compile_routes(app, [FastRoute("POST", "/nowhere", fast)])
