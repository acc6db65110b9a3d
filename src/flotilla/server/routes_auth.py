"""POST /auth: exchange the fleet secret or an API key for a token naming agent, team, role.

The body is read by hand so that no validation message ever echoes the secret.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flotilla.domain.roles import Role
from flotilla.server.auth import (
    DEFAULT_TEAM,
    DEFAULT_TTL_S,
    MAX_TTL_S,
    AuthError,
    Authority,
    is_local,
    iso,
)

log = logging.getLogger("flotilla.auth")

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class AuthBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = None
    api_key: str | None = None
    agent: str | None = Field(default=None, pattern=_NAME_PATTERN)
    team: str = Field(default=DEFAULT_TEAM, pattern=_NAME_PATTERN)
    role: Role | None = None
    ttl_s: int = Field(default=DEFAULT_TTL_S, ge=1)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(defs[str(node["$ref"]).rsplit("/", 1)[-1]], defs)
        return {key: _inline_refs(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


def _auth_body_schema() -> dict[str, Any]:
    """AuthBody's JSON schema, its $defs inlined (a requestBody in openapi_extra has none)."""
    schema = AuthBody.model_json_schema()
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline_refs(schema, defs)
    return inlined


# POST /auth reads its body by hand (messages that never echo the secret); this documents it.
AUTH_REQUEST_BODY = {
    "required": False,
    "content": {"application/json": {"schema": _auth_body_schema()}},
}


def _parse_body(raw: bytes) -> AuthBody:
    """Validation messages name fields, never their values (one of them is the secret)."""
    try:
        return AuthBody.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise AuthError(400, "auth.bad_request", f"bad /auth request: {problems}") from None


def _who(body: AuthBody, authority: Authority, local: bool) -> tuple[str, str, Role]:
    """Check the credential of a /auth request; the agent, team and role the token names."""
    if body.secret is not None and body.api_key is not None:
        raise AuthError(400, "auth.bad_request", "send either secret or api_key, not both")
    if body.api_key is not None:
        key = authority.api_keys.match(body.api_key)
        if key is None:
            raise AuthError(401, "auth.bad_api_key", "unknown or revoked API key")
        if body.role is not None and body.role.value != key.role:
            wanted = body.role.value
            raise AuthError(
                403, "auth.forbidden", f"this API key is for role {key.role!r}, not {wanted!r}"
            )
        return key.agent, key.team, Role(key.role)
    if body.secret is None and not local:
        raise AuthError(
            401,
            "auth.missing_credential",
            "send the fleet secret ('secret') or an API key ('api_key') to get a token",
        )
    if body.secret is not None and not authority.require_tokens().secret_matches(body.secret):
        raise AuthError(401, "auth.bad_secret", "wrong fleet secret")
    if body.agent is None or body.role is None:
        raise AuthError(
            400,
            "auth.bad_request",
            "name the token's 'agent' and 'role' ("
            + ", ".join(r.value for r in Role)
            + "); 'team' is optional",
        )
    return body.agent, body.team, body.role


def add_auth_route(app: FastAPI, authority: Authority) -> None:
    """POST /auth on `app`, issuing tokens of `authority`."""

    @app.post("/auth", openapi_extra={"requestBody": AUTH_REQUEST_BODY})
    async def issue_token(request: Request) -> dict[str, Any]:
        """Exchange the fleet secret or an API key for a token naming agent, team and role.

        Over the local Unix socket no credential is needed (the local user is trusted).
        `ttl_s` is capped at 24 hours; the answer says when the token expires.
        """
        body = _parse_body(await request.body())
        agent, team, role = _who(body, authority, is_local(request.scope))
        ttl = min(body.ttl_s, MAX_TTL_S)
        token, expires = authority.require_tokens().issue(agent, team, role, ttl)
        log.info("issued a %s token for %s@%s until %s", role.value, agent, team, iso(expires))
        return {
            "token": token,
            "token_type": "bearer",
            "expires_at": iso(expires),
            "expires_in": ttl,
            "agent": agent,
            "team": team,
            "role": role.value,
        }
