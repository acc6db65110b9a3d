"""The dashboard's router: its files are served without a token, only those files, with
the headers that keep the page to its own scripts; `GET /dashboard/me` needs a token and
tells the role's permissions; every module the page imports is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flotilla.domain.roles import Role
from flotilla.server.apikeys import ApiKeys
from flotilla.server.auth import Authority, Tokens, install_auth, unguarded_routes
from flotilla.server.routes_dashboard import FOLDER, dashboard_router

SECRET = "s" * 32


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    app = FastAPI()
    install_auth(app, Authority(Tokens(SECRET), ApiKeys.at(tmp_path)))  # over TCP: tokens
    app.include_router(dashboard_router())
    return app


def bearer(role: Role) -> dict[str, str]:
    token, _ = Tokens(SECRET).issue("viewer", "red", role, 60)
    return {"Authorization": f"Bearer {token}"}


def test_page_and_files_need_no_token_and_carry_a_strict_policy(app: FastAPI) -> None:
    client = TestClient(app)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = client.get("/dashboard/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert client.get("/dashboard/style.css").headers["content-type"].startswith("text/css")


def test_every_file_the_page_references_is_served(app: FastAPI) -> None:
    """The page's links and each module's relative imports: a typo would leave a blank page."""
    client = TestClient(app)
    referenced = set(re.findall(r'(?:src|href)="/dashboard/([^"]+)"', client.get("/").text))
    for module in FOLDER.glob("*.js"):
        referenced |= set(re.findall(r'from "\./([^"]+)"', module.read_text()))
    assert {"app.js", "style.css", "api.js", "live.js"} <= referenced
    for name in sorted(referenced):
        assert client.get(f"/dashboard/{name}").status_code == 200, name


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/nope.js",
        "/dashboard/..%2F..%2Fapp.py",
        "/dashboard/routes_dashboard.py",
        "/dashboard/%2e%2e",
    ],
)
def test_nothing_but_the_listed_files(app: FastAPI, path: str) -> None:
    answer = TestClient(app).get(path)
    assert answer.status_code == 404
    assert "import" not in answer.text  # no file's content, of the dashboard or elsewhere


def test_me_needs_a_token_and_names_the_roles_permissions(app: FastAPI) -> None:
    client = TestClient(app)
    refused = client.get("/dashboard/me")
    assert refused.status_code == 401
    assert "Authorization: Bearer <token>" in refused.json()["error"]

    monitor = client.get("/dashboard/me", headers=bearer(Role.MONITOR)).json()
    assert monitor == {
        "agent": "viewer",
        "team": "red",
        "role": "monitor",
        "auth": True,
        "permissions": ["read"],
    }
    lead = client.get("/dashboard/me", headers=bearer(Role.TEAM_LEAD)).json()
    assert {"kill", "prompt", "merge"} <= set(lead["permissions"])
    assert "push" not in lead["permissions"]


def test_only_the_api_route_is_guarded_and_documented(app: FastAPI) -> None:
    assert unguarded_routes(app) == []  # the page's files are not API routes
    paths = set(app.openapi()["paths"])
    assert "/dashboard/me" in paths
    assert "/" not in paths and "/dashboard/{name}" not in paths


def test_a_missing_index_is_refused_when_the_router_is_made(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("")
    with pytest.raises(RuntimeError, match=r"index\.html is missing"):
        dashboard_router(tmp_path)


def test_with_auth_off_the_viewer_needs_no_token(tmp_path: Path) -> None:
    app = FastAPI()
    install_auth(app, Authority(Tokens(SECRET), ApiKeys.at(tmp_path), tcp_auth=False))
    app.include_router(dashboard_router())
    viewer = TestClient(app).get("/dashboard/me").json()
    assert viewer["auth"] is False and viewer["role"] == "coordinator"
    assert "kill" in viewer["permissions"]
