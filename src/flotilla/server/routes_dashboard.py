"""The dashboard: a live page at `/`, its static files, and who the viewer is.

The page is plain HTML, CSS and ES modules in `server/dashboard/` (no build step, nothing
from a CDN). The files hold no data, so they are served without a token, as plain
Starlette routes (not API routes: they are not part of the OpenAPI document, and the
app's check that every API route names a Permission does not apply to them). Only files
listed when the router is made are served; a request's path never reaches the disk.

Everything the page shows comes from the API with the viewer's token. `GET
/dashboard/me` (permission `read`) tells the page who the token names and what its
role may do, so buttons can be shown or disabled; the server still decides each call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from flotilla.counters import count
from flotilla.domain.roles import Permission, allowed
from flotilla.server.auth import Principal, require

FOLDER = Path(__file__).parent / "dashboard"
INDEX = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page talks only to this service (HTTP and WebSocket) and runs only its own files.
_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _files(folder: Path) -> dict[str, Path]:
    return {
        path.name: path
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


def _serve(path: Path) -> Response:
    headers = dict(_HEADERS)
    if path.suffix == ".html":
        headers["Content-Security-Policy"] = _POLICY
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[path.suffix], headers=headers)


def viewer(principal: Principal) -> dict[str, Any]:
    """What the page shows of its viewer, and the permissions its role holds."""
    return {
        "agent": principal.agent,
        "team": principal.team,
        "role": principal.role.value,
        "auth": not principal.local,  # False: no token was needed (auth off, or local)
        "permissions": [p.value for p in Permission if allowed(principal.role, p)],
    }


def dashboard_router(folder: Path = FOLDER) -> APIRouter:
    files = _files(folder)
    if INDEX not in files:
        raise RuntimeError(f"the dashboard's {INDEX} is missing from {folder}")
    router = APIRouter()

    @router.get("/dashboard/me", tags=["dashboard"])
    async def me(principal: Principal = Depends(require(Permission.READ))) -> dict[str, Any]:
        """Who the caller's token names, and what its role may do (for display: the
        server checks every call itself)."""
        return viewer(principal)

    async def index(_: Request) -> Response:
        return _serve(files[INDEX])

    async def asset(request: Request) -> Response:
        name = str(request.path_params["name"])
        path = files.get(name)
        if path is None:
            count("dashboard.unknown_file")
            known = ", ".join(sorted(files))
            return JSONResponse(
                {"error": f"no dashboard file {name!r} (the files are: {known})"},
                status_code=404,
            )
        return _serve(path)

    router.add_route("/", index, methods=["GET"], include_in_schema=False)
    router.add_route("/dashboard/{name}", asset, methods=["GET"], include_in_schema=False)
    return router
