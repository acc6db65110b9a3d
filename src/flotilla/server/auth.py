"""Who is asking, and may they: JWTs, the daemon's Authority, and `require(permission)`.

Trust: a request that came in over the daemon's Unix socket (mode 0600, so only
this user reaches it) is the local user with role coordinator, unless it shows a
token, whose role then applies. A request over TCP needs a token from POST /auth,
unless the service runs with auth off (allowed on loopback only). Which listener
a request came through is written on its ASGI scope by `tag_listener`, one
wrapper per listener; an untagged scope counts as TCP, so a mistake fails closed.

The fleet secret (server/secret.py) signs nothing itself: tokens are signed
(HS256) with a key derived from it, and it is compared in constant time. It is
never logged or returned. POST /auth, which issues tokens, is server/routes_auth.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import fastapi.routing
import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from flotilla.counters import count
from flotilla.domain.errors import UsageError
from flotilla.domain.roles import Permission, Role, allowed, roles_with
from flotilla.server.apikeys import ApiKeys
from flotilla.server.secret import load_secret

log = logging.getLogger("flotilla.auth")

DEFAULT_TTL_S = 3600
MAX_TTL_S = 24 * 3600
LISTENER_KEY = "flotilla.listener"
ISSUER = "flotilla"
DEFAULT_TEAM = "default"
_ALGORITHM = "HS256"
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


def install_auth(app: FastAPI, authority: Authority) -> None:
    """Give `app` its authority, the JSON form of refusals, and POST /auth."""
    # imported here: the route's module builds on this one (AuthError, Authority)
    from flotilla.server.routes_auth import add_auth_route

    app.state.authority = authority

    @app.exception_handler(AuthError)
    async def refused(_: Request, exc: AuthError) -> JSONResponse:
        count(exc.counter)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    add_auth_route(app, authority)
