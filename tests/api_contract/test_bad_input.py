"""Bad input against a real `fleet serve` (auth on, a coordinator token unless the test is
about tokens): oversized bodies, malformed JSON, wrong content types, unknown ids, path
traversal in names, invalid tokens. Each is a clear 4xx with a one-line message, its
counter goes up in /health, and the store holds exactly the rows it held before."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from api_contract_support import Api, message_of, serving

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
MiB = 1024 * 1024
TRAVERSALS = ("%2E%2E", "..%2F..%2Fetc", "a%00b")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serving(tmp_path_factory.mktemp("bad-input")) as served:
        yield served


@pytest.fixture(scope="module")
def token(api: Api) -> str:
    return api.token("coordinator")


@pytest.fixture
def http(api: Api, token: str) -> Iterator[httpx.Client]:
    with api.client(token) as client:
        yield client


class Refused:
    """Asserts one refusal: status, a message with `words`, `counter` up by one, no row
    added or removed anywhere in the store."""

    def __init__(self, api: Api, token: str) -> None:
        self.api = api
        self.token = token

    def check(
        self, response: httpx.Response, status: int, counter: str, words: str, before: Any
    ) -> None:
        counts, rows = before
        assert response.status_code == status, response.text
        message = message_of(response)
        assert words in message, message
        assert "\n" not in message
        after = self.api.counters(self.token)
        assert after.get(counter, 0) == counts.get(counter, 0) + 1, (counter, after)
        assert self.api.rows() == rows

    def before(self) -> Any:
        return self.api.counters(self.token), self.api.rows()


@pytest.fixture
def refused(api: Api, token: str) -> Refused:
    return Refused(api, token)


def _worker(api: Api, name: str = "w1", prompt: str = "do it") -> dict[str, Any]:
    return {"project": str(api.repo), "name": name, "prompt": prompt, "agent": "scripted"}


def test_the_served_document_is_the_checked_in_one(http: httpx.Client) -> None:
    served = http.get("/openapi.json")
    assert served.status_code == 200
    if served.json() != json.loads(DOC.read_text(encoding="utf-8")):
        pytest.fail(
            "the daemon serves another API than docs/openapi.json: keep "
            "scripts/export-openapi.py building the app as server/daemon.py does, then run "
            ".venv/bin/python scripts/export-openapi.py",
            pytrace=False,
        )


def test_an_oversized_body_is_413(api: Api, http: httpx.Client, refused: Refused) -> None:
    body = _worker(api, prompt="x" * (2 * MiB))
    before = refused.before()
    response = http.post("/workers", json=body)
    refused.check(response, 413, "api.body_too_large", "past the limit of 1048576 bytes", before)


def test_a_batch_may_be_larger_but_not_without_bound(
    api: Api, http: httpx.Client, refused: Refused
) -> None:
    names = [f"b{i}" for i in range(3)]
    big = {"workers": [_worker(api, n, prompt="y" * (MiB // 2)) for n in names]}
    before = refused.before()
    # Past 1 MiB yet taken: refused for what it says (no such agent kind), not its size.
    big["workers"][0]["agent"] = "no-such-kind"
    response = http.post("/workers/batch", json=big)
    assert response.status_code == 400, response.text
    assert "no-such-kind" in message_of(response)
    assert api.rows() == before[1]
    huge = {"workers": [_worker(api, f"h{i}", prompt="z" * (4 * MiB)) for i in range(5)]}
    before = refused.before()
    response = http.post("/workers/batch", json=huge)
    refused.check(response, 413, "api.body_too_large", "for POST /workers/batch", before)


def test_malformed_json_is_400(http: httpx.Client, refused: Refused) -> None:
    before = refused.before()
    response = http.post(
        "/workers", content=b'{"name": "w1", ', headers={"content-type": "application/json"}
    )
    refused.check(response, 400, "api.malformed_json", "not valid JSON", before)


def test_a_body_with_a_nul_is_400(api: Api, http: httpx.Client, refused: Refused) -> None:
    before = refused.before()
    response = http.post("/tasks", json={"title": "a\x00b", "team": "default"})
    refused.check(response, 400, "api.malformed_json", "NUL character", before)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_wrong_content_type_is_415(
    api: Api, http: httpx.Client, refused: Refused, content_type: str
) -> None:
    before = refused.before()
    body = json.dumps(_worker(api)).encode()
    response = http.post("/workers", content=body, headers={"content-type": content_type})
    refused.check(
        response, 415, "api.unsupported_media_type", "Content-Type: application/json", before
    )


def test_invalid_fields_are_422_in_one_line(http: httpx.Client, refused: Refused) -> None:
    before = refused.before()
    response = http.post("/workers", json={"name": 3})
    refused.check(response, 422, "api.invalid_request", "body.project: Field required", before)


@pytest.mark.parametrize(
    "path",
    [
        "/workers/nobody?project={repo}",
        "/workers/nobody/result?project={repo}",
        "/workflows/nothing?project={repo}",
        "/tasks/0123456789abcdef",
        "/messages/0123456789abcdef",
        "/teams/nobody",
        "/swarms/nothing",
        "/checkpoints/nothing?project={repo}",
    ],
)
def test_unknown_ids_are_404(api: Api, http: httpx.Client, refused: Refused, path: str) -> None:
    before = refused.before()
    response = http.get(path.format(repo=api.repo))
    refused.check(response, 404, "api.error.NotFound", "no ", before)


def _name_operations() -> list[tuple[str, str]]:
    """Every operation with a path parameter, from the document."""
    document = json.loads(DOC.read_text(encoding="utf-8"))
    found = []
    for path, methods in document["paths"].items():
        if "{" in path:
            found += [(method.upper(), path) for method in methods]
    return found


def test_path_traversal_in_any_name_is_400(api: Api, http: httpx.Client, refused: Refused) -> None:
    operations = _name_operations()
    assert len(operations) >= 20
    before = refused.before()
    refusals = 0
    for method, template in operations:
        for bad in TRAVERSALS:
            url = re.sub(r"\{[^}]+\}", bad, template) + f"?project={api.repo}"
            response = http.request(method, url, json={} if method != "GET" else None)
            assert response.status_code == 400, (method, url, response.text)
            assert message_of(response), (method, url)
            refusals += 1
    counts, rows = before
    after = api.counters(refused.token)
    assert after["api.bad_path"] == counts.get("api.bad_path", 0) + refusals
    assert api.rows() == rows


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/workers", {"name": "../evil", "prompt": "p", "agent": "scripted"}, "path separator"),
        ("/workers", {"name": "..", "prompt": "p", "agent": "scripted"}, "is not valid"),
        ("/teams", {"name": "../evil"}, "path separator"),
        ("/swarms", {"name": "a/b", "goal": "g", "max_size": 2}, "path separator"),
    ],
)
def test_traversal_in_a_body_name_is_400(
    api: Api, http: httpx.Client, refused: Refused, path: str, body: dict[str, Any], words: str
) -> None:
    body = {"project": str(api.repo), **body}
    before = refused.before()
    response = http.post(path, json=body)
    refused.check(response, 400, "api.error.InvalidName", words, before)


def _forged(api: Api) -> str:
    claims = {"iss": "flotilla", "sub": "x", "role": "coordinator", "iat": 1, "exp": 2**40}
    return jwt.encode({**claims, "jti": "j"}, "not-the-fleet-key-0123456789abcdef", "HS256")


def _expired(api: Api) -> str:
    with api.client() as client:
        answer = client.post(
            "/auth",
            json={
                "secret": "contract-tests-secret-0123456789abcdef",
                "agent": "old",
                "role": "monitor",
                "ttl_s": 1,
            },
        )
    assert answer.status_code == 200, answer.text
    time.sleep(2.1)
    return str(answer.json()["token"])


@pytest.mark.parametrize(
    ("make", "counter", "words"),
    [
        (lambda api: "not-a-jwt", "auth.invalid_token", "invalid token"),
        (_forged, "auth.invalid_token", "invalid token"),
        (_expired, "auth.expired_token", "token expired at"),
    ],
)
def test_invalid_tokens_are_401(
    api: Api, refused: Refused, make: Any, counter: str, words: str
) -> None:
    bad = make(api)
    before = refused.before()
    with api.client(bad) as client:
        response = client.post("/workers", json=_worker(api))
    refused.check(response, 401, counter, words, before)
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_role_without_the_permission_is_403(api: Api, refused: Refused) -> None:
    monitor = api.token("monitor", agent="watcher")
    before = refused.before()
    with api.client(monitor) as client:
        response = client.post("/workers", json=_worker(api))
    refused.check(response, 403, "auth.forbidden", "role 'monitor' may not 'spawn'", before)
