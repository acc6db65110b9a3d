"""Schemathesis against the checked-in OpenAPI document (docs/openapi.json), sent to a real
`fleet serve` with a coordinator token: no answer is a 5xx, and every 4xx says what is
wrong in one non-empty `error` (or `detail`) message.

Bounded and repeatable: 20 examples per operation, derandomized (a fixed seed), no
example database. Left out: POST /shutdown (it would stop the server under test) and
the live streams (an SSE answer never ends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_contract_support import Api, message_of, serving
from hypothesis import HealthCheck, settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
LEFT_OUT = ("/shutdown", "/events/stream", "/ws")
EXAMPLES = 20

schema = schemathesis.openapi.from_path(str(DOC)).exclude(path=list(LEFT_OUT))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serving(tmp_path_factory.mktemp("schemathesis")) as served:
        yield served


@pytest.fixture(scope="module")
def auth_headers(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token('coordinator')}"}


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error_and_every_refusal_says_why(
    case: schemathesis.Case, api: Api, auth_headers: dict[str, str]
) -> None:
    response = case.call(base_url=api.url, headers=auth_headers, timeout=30)
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text}"
    if 400 <= response.status_code < 500:
        assert message_of(response), f"{where} -> {response.status_code} without a message: " + (
            response.text
        )
