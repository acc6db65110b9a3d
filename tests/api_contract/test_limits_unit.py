"""The edge guard (server/limits.py) on a small FastAPI app in process: each kind of bad
input is one clear 4xx with an `error` line and a named counter, and good input reaches
the route untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flotilla import counters
from flotilla.server.limits import (
    MAX_INT,
    BodyLimits,
    Refusal,
    check_json,
    install_limits,
    path_problem,
    query_number_problem,
)

LIMIT = 1000
BATCH_LIMIT = 5000


class Body(BaseModel):
    name: str
    count: int = 0


def _app() -> FastAPI:
    app = FastAPI()
    limits = BodyLimits(default=LIMIT, larger={("POST", "/things/batch"): BATCH_LIMIT})
    install_limits(app, limits)
    install_limits(app, limits)  # a second call changes nothing

    @app.post("/things")
    async def create(body: Body) -> dict[str, object]:
        return {"got": body.model_dump()}

    @app.post("/things/batch")
    async def batch(body: list[Body]) -> dict[str, int]:
        return {"got": len(body)}

    @app.get("/things/{name}")
    async def get(name: str, since: int = 0) -> dict[str, object]:
        return {"name": name, "since": since}

    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    counters.reset()
    with TestClient(_app(), raise_server_exceptions=True) as test_client:
        yield test_client


def _refused(response: object, status: int, counter: str, words: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    message = response.json()["error"]  # type: ignore[attr-defined]
    assert words in message, message
    assert "\n" not in message
    assert counters.snapshot().get(counter) == 1, counters.snapshot()


def test_good_json_reaches_the_route(client: TestClient) -> None:
    answer = client.post("/things", json={"name": "a", "count": 2})
    assert answer.status_code == 200 and answer.json() == {"got": {"name": "a", "count": 2}}
    assert counters.snapshot() == {}


def test_a_body_over_the_limit_is_413_before_the_route(client: TestClient) -> None:
    body = json.dumps({"name": "x" * LIMIT})
    _refused(
        client.post("/things", content=body, headers={"content-type": "application/json"}),
        413,
        "api.body_too_large",
        f"past the limit of {LIMIT} bytes for POST /things",
    )


def test_a_streamed_body_without_length_is_cut_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"y" * 100
        yield b'"}'

    answer = client.post("/things", content=chunks(), headers={"content-type": "application/json"})
    _refused(answer, 413, "api.body_too_large", f"more than {LIMIT} bytes")


def test_the_batch_route_has_its_larger_limit(client: TestClient) -> None:
    items = [{"name": f"w{i}", "count": i} for i in range(100)]
    body = json.dumps(items)
    assert LIMIT < len(body) < BATCH_LIMIT
    answer = client.post(
        "/things/batch", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200 and answer.json() == {"got": 100}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_415(client: TestClient, content_type: str) -> None:
    answer = client.post("/things", content=b"name=a", headers={"content-type": content_type})
    _refused(answer, 415, "api.unsupported_media_type", "Content-Type: application/json")


def test_json_suffix_types_are_json(client: TestClient) -> None:
    headers = {"content-type": "application/merge-patch+json; charset=utf-8"}
    answer = client.post("/things", content=b'{"name": "a"}', headers=headers)
    assert answer.status_code == 200, answer.text


def test_a_body_without_content_type_is_415(client: TestClient) -> None:
    answer = client.post("/things", content=b'{"name": "a"}')
    _refused(answer, 415, "api.unsupported_media_type", "(got None)")


def test_an_empty_body_is_left_to_the_route(client: TestClient) -> None:
    answer = client.post("/things", content=b"", headers={"content-type": "text/plain"})
    assert answer.status_code == 422  # the route's own "Field required"
    assert counters.snapshot() == {"api.invalid_request": 1}


@pytest.mark.parametrize(
    ("body", "counter", "words"),
    [
        (
            b'{"name": ',
            "api.malformed_json",
            "not valid JSON (Expecting value at line 1 column 10)",
        ),
        (b"\xff\xfe{}", "api.malformed_json", "not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "api.malformed_json", "nests deeper than"),
        (b'{"name": "a\\u0000b"}', "api.malformed_json", "NUL character"),
        (b'{"name": "a", "count": NaN}', "api.number_out_of_range", "NaN"),
        (b'{"name": "a", "count": 1e999}', "api.number_out_of_range", "finite number"),
        (
            b'{"name": "a", "count": ' + str(MAX_INT + 1).encode() + b"}",
            "api.number_out_of_range",
            str(MAX_INT),
        ),
    ],
)
def test_bad_json_is_400(client: TestClient, body: bytes, counter: str, words: str) -> None:
    limits = BodyLimits(default=20_000)
    app = FastAPI()
    install_limits(app, limits)

    @app.post("/things")
    async def create(body: Body) -> dict[str, object]:
        return {}

    with TestClient(app) as test_client:
        answer = test_client.post(
            "/things", content=body, headers={"content-type": "application/json"}
        )
    _refused(answer, 400, counter, words)


def test_validation_errors_are_one_line_naming_the_fields(client: TestClient) -> None:
    answer = client.post("/things", json={"count": "many"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == (
        "invalid request: body.name: Field required; "
        "body.count: Input should be a valid integer, unable to parse string as an integer"
    )
    assert [d["loc"] for d in body["detail"]] == [["body", "name"], ["body", "count"]]
    assert "input" not in body["detail"][0]  # a refused body is never echoed back
    assert counters.snapshot() == {"api.invalid_request": 1}


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/things/%2E%2E", "'..' is not a valid name"),
        ("/things/%2e", "'.' is not a valid name"),
        ("/things/..%2Fsecret", "contains a path separator"),
        ("/things/a%5Cb", "contains a path separator"),
        ("/things/a%00b", "NUL or control character"),
        ("/things/a%0Ab", "NUL or control character"),
        ("/things/a?since=1%00", "query string contains a NUL"),
    ],
)
def test_traversal_and_nul_in_the_url_are_400(client: TestClient, path: str, words: str) -> None:
    _refused(client.get(path), 400, "api.bad_path", words)


def test_a_number_past_64_bits_in_the_query_is_400(client: TestClient) -> None:
    assert client.get(f"/things/a?since={MAX_INT}").status_code == 200
    _refused(
        client.get(f"/things/a?since={MAX_INT + 1}"),
        400,
        "api.number_out_of_range",
        "query parameter 'since'",
    )


def test_unknown_routes_and_methods_say_so(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no such route: GET /nowhere (the API is listed at /docs)"
    wrong = client.delete("/things")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"] == "method DELETE is not allowed on /things (allowed: POST)"
    assert counters.snapshot() == {"api.http_404": 1, "api.http_405": 1}


@pytest.mark.parametrize(
    ("raw", "query", "problem"),
    [
        (b"/workers/fix-login", b"project=/tmp/x&lines=20", False),
        (b"/workers/v1.2_a-b", b"", False),
        (b"/", b"", False),
        (b"/workers/%2E%2E", b"", True),
        (b"/workers/%252E", b"", False),  # '%2E' as a name: odd, but not a step out
        (b"/x/a%2Fb", b"", True),
        (b"/x/a", b"q=%00", True),
    ],
)
def test_path_problem(raw: bytes, query: bytes, problem: bool) -> None:
    assert (path_problem(raw, query) is not None) is problem


def test_only_whole_numbers_past_64_bits_are_refused_in_queries() -> None:
    assert query_number_problem(b"since=9223372036854775807") is None
    assert query_number_problem(b"name=abc92233720368547758079") is None
    assert query_number_problem(b"since=-9223372036854775808") is not None
    assert query_number_problem(b"since=0000000000000000000000001") is None


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_body_is_taken_or_refused_with_a_reason(body: bytes) -> None:
    try:
        check_json(body)
    except Refusal as refusal:
        assert refusal.status == 400 and str(refusal)
        assert refusal.counter in ("api.malformed_json", "api.number_out_of_range")
