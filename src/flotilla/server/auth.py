"""Who is asking, and may they: the fleet secret, API keys, JWTs, and `require(permission)`.

Trust: a request that came in over the daemon's Unix socket (mode 0600, so only
this user reaches it) is the local user with role coordinator, unless it shows a
token, whose role then applies. A request over TCP needs a token from POST /auth,
unless the service runs with auth off (allowed on loopback only). Which listener
a request came through is written on its ASGI scope by `tag_listener`, one
wrapper per listener; an untagged scope counts as TCP, so a mistake fails closed.

The secret signs nothing itself: tokens are signed (HS256) with a key derived
from it, and it is compared in constant time. It is never logged or returned.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastapi.routing
import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from flotilla.counters import count
from flotilla.domain.errors import UsageError
from flotilla.domain.roles import Permission, Role, allowed, roles_with
from flotilla.server.apikeys import ApiKeys

log = logging.getLogger("flotilla.auth")

SECRET_ENV = "FLOTILLA_SECRET"
SECRET_FILE_ENV = "FLOTILLA_SECRET_FILE"
MIN_SECRET_CHARS = 16
DEFAULT_TTL_S = 3600
MAX_TTL_S = 24 * 3600
LISTENER_KEY = "flotilla.listener"
ISSUER = "flotilla"
DEFAULT_TEAM = "default"
_ALGORITHM = "HS256"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_HOW = "get one with POST /auth"
VERIFIED_CACHE = 4096  # tokens remembered as verified


@dataclass(frozen=True)
class Principal:
    """The caller: an agent of a team acting in a role."""

    agent: str
    team: str
    role: Role
    local: bool = False
    token_id: str | None = None


LOCAL = Principal(agent="local", team=DEFAULT_TEAM, role=Role.COORDINATOR, local=True)


class AuthError(Exception):
    """A refused request: 401 (who are you?) or 403 (not allowed), counted under `counter`."""

    def __init__(self, status: int, counter: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.counter = counter


# -- the secret -------------------------------------------------------------------------


def secret_path(home: Path, env: Mapping[str, str]) -> Path:
    explicit = env.get(SECRET_FILE_ENV, "")
    return Path(explicit).expanduser().absolute() if explicit else home / "secret"


def load_secret(home: Path, env: Mapping[str, str]) -> tuple[str, str]:
    """(secret, where it came from): $FLOTILLA_SECRET, else the secret file, made on first use."""
    value = env.get(SECRET_ENV, "")
    if value:
        _check_length(value, f"${SECRET_ENV}")
        return value, f"${SECRET_ENV}"
    path = secret_path(home, env)
    if not path.exists():
        _create_secret(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise UsageError(
            f"the secret file {path} can be read by others (mode {mode:04o}): run chmod 600 {path}"
        )
    text = path.read_text().strip()
    _check_length(text, str(path))
    return text, str(path)


def _check_length(secret: str, origin: str) -> None:
    if len(secret) < MIN_SECRET_CHARS:
        raise UsageError(
            f"the fleet secret from {origin} is shorter than {MIN_SECRET_CHARS} characters: "
            "use a long random value (or remove it and let Flotilla make one)"
        )


def _create_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        count("auth.secret_made_concurrently")  # another process made it first: use theirs
        return
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    log.info("generated a fleet secret in %s", path)


# -- tokens -----------------------------------------------------------------------------


class Tokens:
    """Issues and verifies the JWTs of one fleet secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self._key = hmac.new(self._secret, b"flotilla-jwt-v1", hashlib.sha256).digest()
        # token -> (who, expiry): a client sends the same token with every request, and
        # decoding and checking it cost ~60 us each time. Bounded; an entry lapses with its
        # token (tokens are not revoked one by one: a new secret means a new Tokens).
        self._verified: dict[str, tuple[Principal, float]] = {}

    def secret_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._secret)

    def issue(
        self, agent: str, team: str, role: Role, ttl_s: int, now: float | None = None
    ) -> tuple[str, int]:
        """A signed token and its expiry (Unix seconds)."""
        issued = time.time() if now is None else now
        expires = math.ceil(issued + ttl_s)  # whole seconds, never shorter than asked
        claims = {
            "iss": ISSUER,
            "sub": agent,
            "team": team,
            "role": role.value,
            "iat": int(issued),
            "exp": expires,
            "jti": secrets.token_hex(12),
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM), expires

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        principal, expires = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        required = ["exp", "iat", "sub", "role", "jti"]
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                issuer=ISSUER,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(
                401, "auth.expired_token", f"token expired at {self._expiry(token)}: {_HOW}"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, "auth.invalid_token", f"invalid token ({exc}): {_HOW}") from None
        try:
            role = Role(claims["role"])
        except ValueError:
            raise AuthError(
                401, "auth.invalid_token", f"invalid token (unknown role): {_HOW}"
            ) from None
        principal = Principal(
            agent=str(claims["sub"]),
            team=str(claims.get("team") or DEFAULT_TEAM),
            role=role,
            token_id=str(claims["jti"]),
        )
        return principal, float(claims["exp"])

    def _expiry(self, token: str) -> str:
        claims = jwt.decode(
            token, self._key, algorithms=[_ALGORITHM], options={"verify_exp": False}
        )
        return iso(int(claims["exp"]))


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


# -- the authority of one daemon --------------------------------------------------------


@dataclass
class Authority:
    """What the daemon knows to decide: the tokens of its secret, its API keys, and
    whether TCP callers must show a token (`tcp_auth`; off only on loopback)."""

    tokens: Tokens | None
    api_keys: ApiKeys
    secret_origin: str = ""
    tcp_auth: bool = True
    problem: str = ""  # why `tokens` is None

    @classmethod
    def load(cls, home: Path, env: Mapping[str, str], *, tcp_auth: bool = True) -> Authority:
        """Raises UsageError when the secret is unusable (too short, readable by others)."""
        secret, origin = load_secret(home, env)
        return cls(Tokens(secret), ApiKeys.at(home), origin, tcp_auth)

    @classmethod
    def tolerant(cls, home: Path, env: Mapping[str, str]) -> Authority:
        """For the Unix-socket-only daemon: a bad secret must not stop the CLI from working;
        it only turns token issuing off, and says why."""
        try:
            return cls.load(home, env)
        except UsageError as exc:
            count("auth.secret_unusable")
            log.warning("tokens are off: %s", exc)
            return cls(None, ApiKeys.at(home), problem=str(exc))

    def require_tokens(self) -> Tokens:
        if self.tokens is None:
            raise AuthError(503, "auth.unavailable", f"auth is not available: {self.problem}")
        return self.tokens


def authority_of(request: Request) -> Authority:
    authority: Authority = request.app.state.authority
    return authority


def is_local(scope: Scope) -> bool:
    return scope.get(LISTENER_KEY) == "unix"


def tag_listener(app: ASGIApp, *, local: bool) -> ASGIApp:
    """The app as served on one listener: marks each request with where it came in."""
    kind = "unix" if local else "tcp"

    async def tagged(scope: Scope, receive: Receive, send: Send) -> None:
        scope[LISTENER_KEY] = kind
        await app(scope, receive, send)

    return tagged


_bearer = HTTPBearer(auto_error=False, description="A token from POST /auth.")


def principal_for(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    authority = authority_of(request)
    if credentials is None:
        if is_local(request.scope) or not authority.tcp_auth:
            return LOCAL
        raise AuthError(
            401,
            "auth.missing_token",
            f"no token: send the header 'Authorization: Bearer <token>'; {_HOW} "
            '(JSON {"secret" or "api_key", "agent", "role"})',
        )
    return authority.require_tokens().verify(credentials.credentials)


class Require:
    """FastAPI dependency: the caller's Principal, if its role has `permission`."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> Principal:
        principal = principal_for(request, credentials)
        if not allowed(principal.role, self.permission):
            able = ", ".join(r.value for r in roles_with(self.permission))
            raise AuthError(
                403,
                "auth.forbidden",
                f"role {principal.role.value!r} may not {self.permission.value!r} "
                f"(roles that may: {able})",
            )
        return principal


def require(permission: Permission) -> Require:
    return Require(permission)


OPEN_PATHS = frozenset({"/auth"})


def api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """(path, route) of every HTTP route, inside included routers too (newer FastAPI keeps
    those as one node each instead of copying their routes into the app's list)."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:
        yield from ((r.path, r) for r in app.routes if isinstance(r, APIRoute))
        return
    for context in iterate(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield str(context.path or context.original_route.path), context.original_route


def route_permission(route: APIRoute) -> Permission | None:
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, Require):
            return dependency.call.permission
    return None


def unguarded_routes(app: FastAPI) -> list[str]:
    """HTTP routes that name no Permission (besides OPEN_PATHS): build_app serves none."""
    return [
        f"{','.join(sorted(route.methods or ()))} {path}"
        for path, route in api_routes(app)
        if path not in OPEN_PATHS and route_permission(route) is None
    ]


# -- POST /auth ---------------------------------------------------------------------------


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


def install_auth(app: FastAPI, authority: Authority) -> None:
    """Give `app` its authority, the JSON form of refusals, and POST /auth."""
    app.state.authority = authority

    @app.exception_handler(AuthError)
    async def refused(_: Request, exc: AuthError) -> JSONResponse:
        count(exc.counter)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

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
