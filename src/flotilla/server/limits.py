"""Bad input at the API's edge: one clear 4xx, counted, before any route runs.

`install_limits(app)` adds what FastAPI does not do, or does with a message a
person cannot act on:

    413  a body over the size limit (1 MiB; 16 MiB for POST /workers/batch), refused
         before it is read whole when Content-Length says so     api.body_too_large
    415  a body not sent as JSON (every route that takes a body takes JSON; a body
         without Content-Type is not JSON either, as in FastAPI)  api.unsupported_media_type
    400  a body that is not valid JSON, or nested past what a parser should follow,
         or holding a NUL character (no name or text may hold one, and PostgreSQL
         refuses them)                                            api.malformed_json
    400  a whole number past 64 bits, or NaN/Infinity, in the body or the query (no
         store column holds one: SQLite would raise an OverflowError) api.number_out_of_range
    400  a path segment that is `.` or `..`, holds a path separator, a NUL or a
         control character, or a query holding a NUL            api.bad_path
    422  FastAPI's validation errors, as one line naming each field and what is wrong
         (`{"error": ..., "detail": [{loc, msg, type}]}`; inputs are not echoed, a
         body may hold a secret)                                 api.invalid_request
    4xx  Starlette's own refusals (no such route, method not allowed) get an `error`
         line beside their `detail`                              api.http_<status>

Refusals have the shape every other error of the API has: `{"error": "..."}`.
The guard is a plain ASGI middleware: GET requests pass with two string checks,
and WebSockets are not touched.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flotilla.counters import count

MiB = 1024 * 1024
MAX_BODY_BYTES = 1 * MiB
BATCH_BODY_BYTES = 16 * MiB  # up to 1,000 workers, each with its prompt
LARGER_BODIES: Mapping[tuple[str, str], int] = {("POST", "/workers/batch"): BATCH_BODY_BYTES}
MAX_JSON_DEPTH = 64  # no request of this API nests deeper; a parser must not recurse for long
MAX_INT = 2**63 - 1  # the widest integer column of the store (BIGINT, SQLite INTEGER)
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
_LONG_DIGITS = re.compile(rb"\d{19,}")  # shorter runs of digits are within 64 bits
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")
_INSTALLED = "flotilla_limits_installed"
_SHOWN_ERRORS = 5


@dataclass(frozen=True)
class BodyLimits:
    default: int = MAX_BODY_BYTES
    larger: Mapping[tuple[str, str], int] = field(default_factory=lambda: dict(LARGER_BODIES))

    def for_request(self, method: str, path: str) -> int:
        return self.larger.get((method, path), self.default)


class Refusal(Exception):
    """A request refused at the edge: its status, counter and one-line message."""

    def __init__(self, status: int, counter: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.counter = counter


# -- checks, pure ---------------------------------------------------------------------------


def path_problem(raw_path: bytes, query: bytes) -> str | None:
    """Why this URL is refused, or None. Segments are checked as sent (percent-decoded one
    at a time), so an encoded '/' inside a name is caught, not taken for two segments."""
    for raw in raw_path.split(b"/")[1:]:
        segment = unquote(raw.decode("latin-1"), errors="replace")
        if segment in (".", ".."):
            return (
                f"path segment {segment!r} is not a valid name: names are letters, digits, "
                "'.', '_' and '-', and never step out of a folder"
            )
        if "/" in segment or "\\" in segment:
            return f"path segment {segment!r} contains a path separator: names cannot hold '/'"
        if any(ord(c) < 32 or ord(c) == 127 for c in segment):
            return (
                f"path segment {segment!r} contains a NUL or control character: "
                "names are letters, digits, '.', '_' and '-'"
            )
    if b"\x00" in unquote_to_bytes(query):
        return "the query string contains a NUL character: remove it"
    return None


def query_number_problem(query: bytes) -> str | None:
    """Why a number in the query cannot be taken (past 64 bits), or None."""
    if not _LONG_DIGITS.search(query):
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if _WHOLE_NUMBER.fullmatch(value.strip()) and _too_big(value.strip()):
            return f"query parameter {name!r} is past the largest number taken ({MAX_INT})"
    return None


def _too_big(digits: str) -> bool:
    bare = digits.lstrip("+-").lstrip("0")
    return len(bare) > len(str(MAX_INT)) or (bare != "" and int(bare) > MAX_INT)


def is_json(content_type: str | None) -> bool:
    """application/json or application/*+json (FastAPI's own rule)."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def check_json(body: bytes) -> None:
    """Raise Refusal unless `body` is JSON this API can take."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise Refusal(
            400, "api.malformed_json", "the request body is not UTF-8 text: send JSON in UTF-8"
        ) from None
    except json.JSONDecodeError as exc:
        raise Refusal(
            400,
            "api.malformed_json",
            f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}): send a JSON object",
        ) from None
    except RecursionError:
        raise Refusal(400, "api.malformed_json", _too_deep()) from None
    _check_value(value, 0)


def _no_constant(name: str) -> Any:
    raise Refusal(
        400,
        "api.number_out_of_range",
        f"the request body holds {name}, which is not a JSON number: send a finite number",
    )


def _too_deep() -> str:
    return f"the request body nests deeper than {MAX_JSON_DEPTH} levels: flatten it"


def _check_value(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise Refusal(400, "api.malformed_json", _too_deep())
    if isinstance(value, str):
        if "\x00" in value:
            raise Refusal(
                400,
                "api.malformed_json",
                "the request body holds a NUL character (\\u0000), which no name or text "
                "may hold: remove it",
            )
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) > MAX_INT:
            raise Refusal(
                400,
                "api.number_out_of_range",
                f"the request body holds a number past the largest one taken ({MAX_INT})",
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Refusal(
                400,
                "api.number_out_of_range",
                "the request body holds a number too large for a float: send a finite number",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(key, depth + 1)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)


# -- the middleware -------------------------------------------------------------------------


class EdgeGuard:
    """ASGI middleware: refuse bad URLs and bodies before routing (see the module doc)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
            query = scope.get("query_string", b"")
            problem = path_problem(raw_path, query)
            if problem is not None:
                raise Refusal(400, "api.bad_path", problem)
            problem = query_number_problem(query)
            if problem is not None:
                raise Refusal(400, "api.number_out_of_range", problem)
            if scope["method"] in _NO_BODY:
                await self.app(scope, receive, send)
                return
            body = await self._read_body(scope, receive)
        except Refusal as refusal:
            count(refusal.counter)
            await _refuse(refusal, scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body, checked; Refusal when too large, not JSON, or malformed."""
        method, path = scope["method"], scope["path"]
        limit = self.limits.for_request(method, path)
        headers = _headers(scope)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise Refusal(400, "api.bad_length", f"Content-Length {declared!r} is not a number")
            if int(declared) > limit:
                raise self._too_large(int(declared), limit, method, path)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: the app will see the same
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(size, limit, method, path, at_least=True)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if not body:
            return body
        content_type = headers.get("content-type")
        if not is_json(content_type):
            raise Refusal(
                415,
                "api.unsupported_media_type",
                f"{method} {path} takes a JSON body: send it with the header "
                f"'Content-Type: application/json' (got {content_type!r})",
            )
        check_json(body)
        return body

    def _too_large(
        self, size: int, limit: int, method: str, path: str, at_least: bool = False
    ) -> Refusal:
        amount = f"more than {limit} bytes" if at_least else f"{size} bytes"
        batch = (method, path) in self.limits.larger
        return Refusal(
            413,
            "api.body_too_large",
            f"the request body is {amount}, past the limit of {limit} bytes for {method} {path}: "
            + ("split it into several requests" if batch else "send less"),
        )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the body already read, then the real channel (so the
    app still hears of a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"error": str(refusal)}, status_code=refusal.status)
    await response(scope, receive, send)


# -- validation errors ----------------------------------------------------------------------


def describe_errors(errors: list[Any]) -> str:
    """FastAPI's validation errors as one line: `body.workers.0.name: Field required; ...`."""
    parts = []
    for error in errors[:_SHOWN_ERRORS]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    if len(errors) > _SHOWN_ERRORS:
        parts.append(f"and {len(errors) - _SHOWN_ERRORS} more")
    return "; ".join(parts)


async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
    errors = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
    count("api.invalid_request")
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in errors
    ]
    message = describe_errors(errors) or "the request is not valid"
    return JSONResponse({"error": f"invalid request: {message}", "detail": detail}, 422)


async def http_refusal(request: Request, exc: Exception) -> Response:
    """Starlette's refusals with the API's `error` line (status and headers kept)."""
    if not isinstance(exc, HTTPException):
        raise exc
    if exc.status_code in (204, 304):  # no body allowed, as Starlette's own handler does
        return Response(status_code=exc.status_code, headers=exc.headers)
    count(f"api.http_{exc.status_code}")
    route = f"{request.method} {request.url.path}"
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no such route: {route} (the API is listed at /docs)"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"method {request.method} is not allowed on {request.url.path}" + (
            f" (allowed: {allowed})" if allowed else ""
        )
    else:
        message = str(exc.detail)
    return JSONResponse(
        {"error": message, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


def install_limits(app: FastAPI, limits: BodyLimits | None = None) -> None:
    """Guard `app`'s edge (once; a second call changes nothing)."""
    if getattr(app.state, _INSTALLED, False):
        return
    setattr(app.state, _INSTALLED, True)
    app.add_middleware(EdgeGuard, limits=limits or BodyLimits())
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_refusal)
