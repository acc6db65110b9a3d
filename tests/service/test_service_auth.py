"""Secret, tokens, API keys, `require` and POST /auth, in process (no sockets)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from test_service_roles import EXPECTED

from flotilla.counters import snapshot
from flotilla.domain.errors import NotFound, UsageError
from flotilla.domain.roles import Permission, Role
from flotilla.server.apikeys import ApiKeys
from flotilla.server.auth import (
    MAX_TTL_S,
    AuthError,
    Authority,
    Principal,
    Tokens,
    install_auth,
    require,
    tag_listener,
)
from flotilla.server.secret import load_secret

SECRET = "a-test-secret-that-is-long-enough"


def _delta(before: dict[str, int], name: str) -> int:
    return snapshot().get(name, 0) - before.get(name, 0)


def mini_app(authority: Authority) -> FastAPI:
    """One route per permission, each answering with the caller it saw."""
    app = FastAPI()
    install_auth(app, authority)
    for permission in Permission:

        async def endpoint(who: Principal = Depends(require(permission))) -> dict[str, Any]:
            return {"agent": who.agent, "role": who.role.value, "local": who.local}

        app.add_api_route(f"/p/{permission.value}", endpoint, methods=["POST"])
    return app


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority.load(tmp_path, {"FLOTILLA_SECRET": SECRET})


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fleet")


@pytest.fixture
async def tcp(authority: Authority) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests arrive as over TCP (untagged scopes count as TCP)."""
    async with client_of(mini_app(authority)) as client:
        yield client


def bearer(
    authority: Authority, role: Role, ttl: int = 60, now: float | None = None
) -> dict[str, str]:
    assert authority.tokens is not None
    token, _ = authority.tokens.issue("agent-1", "blue", role, ttl, now=now)
    return {"Authorization": f"Bearer {token}"}


# -- the secret -------------------------------------------------------------------------


def test_secret_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    secret, origin = load_secret(tmp_path, {})
    path = tmp_path / "secret"
    assert origin == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 40
    assert load_secret(tmp_path, {}) == (secret, origin)  # kept, not made again


def test_secret_from_the_environment_wins_and_makes_no_file(tmp_path: Path) -> None:
    assert load_secret(tmp_path, {"FLOTILLA_SECRET": SECRET}) == (SECRET, "$FLOTILLA_SECRET")
    assert not (tmp_path / "secret").exists()


def test_secret_file_named_by_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "fleet.key"
    secret, origin = load_secret(tmp_path, {"FLOTILLA_SECRET_FILE": str(path)})
    assert origin == str(path) and path.read_text().strip() == secret


def test_secret_readable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET)
    os.chmod(path, 0o644)
    with pytest.raises(UsageError, match=r"can be read by others \(mode 0644\): run chmod 600"):
        load_secret(tmp_path, {})


def test_short_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="shorter than 16 characters") as caught:
        load_secret(tmp_path, {"FLOTILLA_SECRET": "tiny-secret"})
    assert "tiny-secret" not in str(caught.value)


def test_tolerant_authority_turns_tokens_off_and_says_why(tmp_path: Path) -> None:
    authority = Authority.tolerant(tmp_path, {"FLOTILLA_SECRET": "short"})
    assert authority.tokens is None
    with pytest.raises(AuthError, match="auth is not available: the fleet secret"):
        authority.require_tokens()


# -- tokens -----------------------------------------------------------------------------


def test_token_round_trip_names_agent_team_role() -> None:
    tokens = Tokens(SECRET)
    token, expires = tokens.issue("lead-1", "red", Role.TEAM_LEAD, 120)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "lead-1" and claims["team"] == "red" and claims["role"] == "team-lead"
    assert claims["exp"] == expires and expires - claims["iat"] in (120, 121)
    assert expires >= time.time() + 119 and len(claims["jti"]) == 24
    who = tokens.verify(token)
    assert (who.agent, who.team, who.role, who.local) == ("lead-1", "red", Role.TEAM_LEAD, False)
    assert SECRET not in token


def test_expired_token_says_when() -> None:
    tokens = Tokens(SECRET)
    token, _ = tokens.issue("a", "t", Role.MONITOR, 10, now=1_000_000)
    with pytest.raises(AuthError, match=r"token expired at 1970-01-12T13:46:50Z") as caught:
        tokens.verify(token)
    assert (caught.value.status, caught.value.counter) == (401, "auth.expired_token")


@pytest.mark.parametrize(
    "forge",
    [
        lambda good: good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        lambda good: Tokens("another-secret-of-good-length").issue("a", "t", Role.COORDINATOR, 60)[
            0
        ],
        lambda good: jwt.encode(
            {
                "iss": "flotilla",
                "sub": "a",
                "role": "coordinator",
                "iat": 1,
                "exp": 2**40,
                "jti": "x",
            },
            None,
            algorithm="none",
        ),
        lambda good: "not-a-token",
    ],
    ids=["tampered", "other-secret", "alg-none", "garbage"],
)
def test_forged_tokens_are_invalid(forge: Any) -> None:
    tokens = Tokens(SECRET)
    good, _ = tokens.issue("a", "t", Role.MONITOR, 60)
    with pytest.raises(AuthError, match=r"invalid token \(") as caught:
        tokens.verify(forge(good))
    assert caught.value.counter == "auth.invalid_token"


def test_token_with_an_unknown_role_is_invalid() -> None:
    tokens = Tokens(SECRET)
    claims = {"iss": "flotilla", "sub": "a", "role": "god", "iat": int(time.time()), "jti": "j"}
    claims["exp"] = claims["iat"] + 60
    token = jwt.encode(claims, tokens._key, algorithm="HS256")
    with pytest.raises(AuthError, match="unknown role"):
        tokens.verify(token)


# -- require, cell by cell over HTTP ------------------------------------------------------


@pytest.mark.parametrize(("role", "permission"), sorted(EXPECTED, key=str))
async def test_every_cell_is_enforced(
    tcp: httpx.AsyncClient, authority: Authority, role: Role, permission: Permission
) -> None:
    before = snapshot()
    answer = await tcp.post(f"/p/{permission.value}", headers=bearer(authority, role))
    if EXPECTED[(role, permission)]:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"agent": "agent-1", "role": role.value, "local": False}
    else:
        assert answer.status_code == 403
        assert answer.json()["error"].startswith(
            f"role {role.value!r} may not {permission.value!r} (roles that may: coordinator"
        )
        assert _delta(before, "auth.forbidden") == 1


async def test_no_token_over_tcp_is_401_and_counted(tcp: httpx.AsyncClient) -> None:
    before = snapshot()
    answer = await tcp.post("/p/read")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <token>" in answer.json()["error"]
    assert "POST /auth" in answer.json()["error"]
    assert _delta(before, "auth.missing_token") == 1
    assert (await tcp.post("/p/read", headers={"Authorization": "Basic eDp5"})).status_code == 401


async def test_expired_token_over_http_is_401_and_counted(
    tcp: httpx.AsyncClient, authority: Authority
) -> None:
    before = snapshot()
    answer = await tcp.post(
        "/p/read", headers=bearer(authority, Role.MONITOR, now=time.time() - 120)
    )
    assert answer.status_code == 401 and "token expired at" in answer.json()["error"]
    assert _delta(before, "auth.expired_token") == 1


async def test_unix_socket_caller_is_the_local_coordinator(authority: Authority) -> None:
    app = mini_app(authority)
    async with client_of(tag_listener(app, local=True)) as local:
        answer = await local.post("/p/admin")
        assert answer.json() == {"agent": "local", "role": "coordinator", "local": True}
        # a token shown over the socket is honoured: its role applies
        assert (
            await local.post("/p/kill", headers=bearer(authority, Role.MONITOR))
        ).status_code == 403
    async with client_of(tag_listener(app, local=False)) as remote:
        assert (await remote.post("/p/admin")).status_code == 401


async def test_auth_off_lets_tcp_callers_in_as_coordinator(tmp_path: Path) -> None:
    authority = Authority.load(tmp_path, {"FLOTILLA_SECRET": SECRET})
    authority.tcp_auth = False
    async with client_of(mini_app(authority)) as client:
        assert (await client.post("/p/admin")).json()["role"] == "coordinator"


# -- POST /auth -------------------------------------------------------------------------


async def test_auth_with_the_secret_gives_a_working_token(tcp: httpx.AsyncClient) -> None:
    answer = await tcp.post("/auth", json={"secret": SECRET, "agent": "w1", "role": "worker"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["role"] == "worker" and body["team"] == "default" and body["expires_in"] == 3600
    assert body["expires_at"].endswith("Z") and SECRET not in answer.text
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert (await tcp.post("/p/task_claim", headers=headers)).status_code == 200
    assert (await tcp.post("/p/spawn", headers=headers)).status_code == 403


async def test_wrong_secret_is_401_and_counted(tcp: httpx.AsyncClient) -> None:
    before = snapshot()
    answer = await tcp.post("/auth", json={"secret": SECRET + "x", "agent": "w1", "role": "worker"})
    assert answer.status_code == 401 and answer.json() == {"error": "wrong fleet secret"}
    assert _delta(before, "auth.bad_secret") == 1


async def test_ttl_is_capped(tcp: httpx.AsyncClient) -> None:
    body = {"secret": SECRET, "agent": "w1", "role": "monitor", "ttl_s": 10 * MAX_TTL_S}
    assert (await tcp.post("/auth", json=body)).json()["expires_in"] == MAX_TTL_S


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"secret": SECRET, "agent": "w1", "role": "boss"}, 400, "role: Input should be"),
        ({"secret": SECRET, "agent": "w1", "role": "monitor", "ttl_s": 0}, 400, "ttl_s:"),
        ({"secret": SECRET, "agent": "../x", "role": "monitor"}, 400, "agent: String should match"),
        ({"secret": SECRET, "agent": "w1", "role": "monitor", "sekret": 1}, 400, "sekret: Extra"),
        ({"secret": SECRET, "role": "monitor"}, 400, "name the token's 'agent' and 'role'"),
        ({"secret": SECRET, "api_key": "k", "agent": "w"}, 400, "either secret or api_key"),
        ({"agent": "w1", "role": "monitor"}, 401, "send the fleet secret ('secret') or an API key"),
        ({"api_key": "flk_nope"}, 401, "unknown or revoked API key"),
    ],
)
async def test_bad_auth_requests_say_what_is_wrong_and_never_echo_the_secret(
    tcp: httpx.AsyncClient, body: dict[str, Any], status: int, message: str
) -> None:
    answer = await tcp.post("/auth", json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert SECRET not in answer.text


async def test_auth_body_that_is_not_json_is_400(tcp: httpx.AsyncClient) -> None:
    answer = await tcp.post("/auth", content=b"secret=" + SECRET.encode())
    assert answer.status_code == 400 and SECRET not in answer.text


async def test_local_caller_gets_a_token_without_a_credential(authority: Authority) -> None:
    async with client_of(tag_listener(mini_app(authority), local=True)) as local:
        answer = await local.post("/auth", json={"agent": "bot", "role": "merger"})
    assert answer.status_code == 200 and answer.json()["role"] == "merger"


async def test_tokens_off_makes_auth_503(tmp_path: Path) -> None:
    authority = Authority.tolerant(tmp_path, {"FLOTILLA_SECRET": "short"})
    async with client_of(mini_app(authority)) as client:
        answer = await client.post(
            "/auth", json={"secret": SECRET, "agent": "a", "role": "monitor"}
        )
    assert answer.status_code == 503 and "auth is not available" in answer.json()["error"]


# -- API keys ---------------------------------------------------------------------------


async def test_api_key_gets_a_token_of_its_own_role_until_revoked(
    tcp: httpx.AsyncClient, authority: Authority, tmp_path: Path
) -> None:
    keys = ApiKeys.at(tmp_path)
    key, entry = keys.add("ci", "release", Role.MERGER)
    assert key.startswith("flk_") and key not in keys.path.read_text()
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    answer = await tcp.post("/auth", json={"api_key": key})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["agent"], answer.json()["team"], answer.json()["role"]) == (
        "ci",
        "release",
        "merger",
    )
    refused = await tcp.post("/auth", json={"api_key": key, "role": "coordinator"})
    assert refused.status_code == 403 and "for role 'merger', not 'coordinator'" in refused.text
    keys.revoke(entry.id)
    assert (await tcp.post("/auth", json={"api_key": key})).status_code == 401
    with pytest.raises(NotFound, match="no API key with id"):
        keys.revoke(entry.id)


def test_broken_api_key_file_is_a_clear_error(tmp_path: Path) -> None:
    keys = ApiKeys.at(tmp_path)
    keys.path.write_text("{not json")
    with pytest.raises(UsageError, match="is not a valid API key file"):
        keys.match("flk_x")
