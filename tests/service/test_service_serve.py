"""`fleet serve` for real: uvicorn on 127.0.0.1, tokens, refusals, counters, the Unix socket."""

from __future__ import annotations

import json
import stat
import time

import jwt
import pytest
from e2e_support import Fleet, free_port
from service_support import pid_info, serving, start_serve

pytestmark = pytest.mark.slow


def test_tokens_roles_and_refusals_over_tcp(fleet: Fleet) -> None:
    project = {"project": str(fleet.repo)}
    with serving(fleet) as served:
        with served.http() as anonymous:
            for path in ("/workers", "/workflows", "/conflicts", "/health"):
                refused = anonymous.get(path, params=project)
                assert refused.status_code == 401, path
                assert "Authorization: Bearer <token>" in refused.json()["error"]
            wrong = anonymous.post(
                "/auth", json={"secret": "x" * 40, "agent": "a", "role": "monitor"}
            )
            assert wrong.status_code == 401 and wrong.json() == {"error": "wrong fleet secret"}

        monitor = served.token("monitor", agent="watcher")
        with served.http(monitor) as client:
            assert client.get("/workers", params=project).json() == []
            assert client.get("/workflows", params=project).status_code == 200
            # refused before any lookup: no such worker, and not even a project given
            forbidden = client.delete("/workers/ghost")
            assert forbidden.status_code == 403
            assert forbidden.json()["error"] == (
                "role 'monitor' may not 'kill' (roles that may: coordinator, team-lead)"
            )
            assert client.post("/shutdown").status_code == 403

        with served.http(served.token("coordinator")) as client:
            missing = client.delete("/workers/ghost", params=project)
            assert missing.status_code == 404  # allowed: the lookup ran and found nothing

        short = served.token("monitor", ttl_s=1)
        with served.http(short) as client:
            assert client.get("/workers", params=project).status_code == 200
            expires = jwt.decode(short, options={"verify_signature": False})["exp"]
            time.sleep(max(0.0, expires - time.time()) + 0.2)
            expired = client.get("/workers", params=project)
            assert expired.status_code == 401 and "token expired at" in expired.json()["error"]

        # the local socket needs no token, through the CLI and directly
        assert fleet.json("list") == []
        with served.local() as local:
            assert local.get("/workers", params=project).status_code == 200

        with served.http(monitor) as client:
            health = client.get("/health")
        assert health.status_code == 200
        errors = health.json()["errors"]
        for name in ("auth.missing_token", "auth.bad_secret", "auth.forbidden"):
            assert errors.get(name, 0) >= 1, (name, errors)
        assert errors.get("auth.expired_token") == 1
        secret = served.secret
        assert secret not in health.text

        code = served.stop()  # SIGTERM: a clean stop
    assert code == 0
    assert not (fleet.home / "daemon.pid").exists()
    assert not (fleet.home / "daemon.sock").exists()
    path = fleet.home / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for text in (served.text(), (fleet.home / "daemon.log").read_text()):
        assert secret not in text
    assert "serving http://127.0.0.1:" in served.text()
    assert f"the secret from {path}" in served.text()


def test_non_loopback_without_auth_is_refused_before_anything_starts(fleet: Fleet) -> None:
    port = str(free_port())
    proc = fleet.run("serve", "--host", "0.0.0.0", "--port", port, "--no-auth", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --no-auth is only allowed on loopback, not on '0.0.0.0': drop --no-auth "
        "(callers then need a token) or use --host 127.0.0.1"
    ]
    assert not (fleet.home / "daemon.pid").exists()
    assert not (fleet.home / "secret").exists()


def test_no_auth_on_loopback_lets_callers_in(fleet: Fleet) -> None:
    with serving(fleet, "--no-auth") as served, served.http() as client:
        assert client.get("/workers", params={"project": str(fleet.repo)}).status_code == 200
        assert "auth OFF" in served.text()


def test_background_daemon_is_taken_over_and_a_second_serve_refused(fleet: Fleet) -> None:
    fleet.run("daemon", "start")
    background = pid_info(fleet)["pid"]
    with serving(fleet) as served:
        assert "stopped the background daemon (its agents keep running)" in served.text()
        info = pid_info(fleet)
        assert info["pid"] == served.proc.pid != background and info["url"] == served.url

        second = fleet.run("serve", "--port", str(free_port()), check=False)
        assert second.returncode == 1
        assert f"fleet serve is already running for this state home at {served.url}" in (
            second.stderr
        )
        assert served.proc.poll() is None

        fleet.run("daemon", "stop")  # over the socket: the foreground daemon stops too
        assert served.proc.wait(timeout=30) == 0


def test_cli_tokens_and_api_keys(fleet: Fleet) -> None:
    project = {"project": str(fleet.repo)}
    with serving(fleet) as served:
        monitor = fleet.run("token", "--role", "monitor", "--agent", "dash").stdout.strip()
        with served.http(monitor) as client:
            assert client.get("/workers", params=project).status_code == 200
            assert client.post("/repair", params=project).status_code == 403

        added = fleet.json("api-key", "add", "--role", "merger", "--agent", "ci", "--team", "rel")
        key = added["key"]
        listed = fleet.json("api-key", "list")
        assert listed == [{"id": added["id"], "agent": "ci", "team": "rel", "role": "merger"}]
        assert key not in (fleet.home / "api-keys.json").read_text()

        with served.http() as client:
            answer = client.post("/auth", json={"api_key": key})
            assert answer.status_code == 200, answer.text
            assert (answer.json()["agent"], answer.json()["role"]) == ("ci", "merger")
            fleet.run("api-key", "revoke", added["id"])
            revoked = client.post("/auth", json={"api_key": key})
            assert revoked.status_code == 401
            assert revoked.json() == {"error": "unknown or revoked API key"}
        assert key not in served.text()


def test_secret_from_the_environment(fleet: Fleet) -> None:
    secret = "an-environment-secret-0123456789"
    fleet.env["FLOTILLA_SECRET"] = secret
    served, _ = start_serve(fleet)
    try:
        with served.http() as client:
            body = {"secret": secret, "agent": "a", "role": "worker"}
            answer = client.post("/auth", json=body)
        assert answer.status_code == 200 and answer.json()["role"] == "worker"
        assert "the secret from $FLOTILLA_SECRET" in served.text()
        assert not (fleet.home / "secret").exists()
    finally:
        served.stop()
    assert secret not in served.text() + (fleet.home / "daemon.log").read_text()


def test_short_secret_in_the_environment_is_refused(fleet: Fleet) -> None:
    proc = fleet.run(
        "serve", "--port", str(free_port()), env={"FLOTILLA_SECRET": "short-one"}, check=False
    )
    assert proc.returncode == 2
    assert "shorter than 16 characters" in proc.stderr and "short-one" not in proc.stderr
    assert json.dumps(pid_info(fleet)) == "{}"
