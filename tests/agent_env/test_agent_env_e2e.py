"""Agents launched by a real daemon see the fleet in their environment: a real `fleet
serve` (and the CLI's own background daemon), scripted agents that write their
environment to a file outside the state home. Their token verifies and names them; it
reaches nothing else: not the store, the daemon's log, nor any file of the state home."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from agent_env_support import (
    SECRET,
    TIMEOUT_S,
    Dumping,
    dumping_fleet,
    files_holding,
    serving,
)

from flotilla.domain.roles import Role
from flotilla.orchestrator.agent_env import TOKEN_MARGIN_S
from flotilla.server.auth import Tokens

pytestmark = pytest.mark.slow


def _assert_kept_private(dumping: Dumping, token: str, also: list[Path]) -> None:
    """The token is in no file of the state home (store, WAL, daemon log, run folders,
    env.json, agent output) and in none of `also`."""
    home = dumping.fleet.home
    assert files_holding(home, token) == []
    for path in also:
        assert token not in path.read_text(errors="replace"), path


def test_a_served_fleets_agent_gets_url_token_and_identity(tmp_path: Path) -> None:
    with dumping_fleet(tmp_path) as dumping, serving(dumping) as served:
        fleet = dumping.fleet
        request_env = {
            **dumping.request_env(),
            # What an agent creating a worker would pass on: none of it may reach the child.
            "FLOTILLA_TOKEN": "the-creators-token",
            "FLOTILLA_ROLE": "coordinator",
            "FLOTILLA_URL": "http://127.0.0.1:9",
        }
        body = {
            "project": str(fleet.repo),
            "name": "w1",
            "prompt": "dump your environment",
            "batch": "crew",
            "env": request_env,
        }
        with served.client(served.token()) as client:
            created = client.post("/workers", json=body)
        assert created.status_code == 200, created.text
        env = dumping.env_of("w1")
        assert env["FLOTILLA_URL"] == served.url
        assert env["FLOTILLA_SOCKET"] == str(fleet.home / "daemon.sock")
        assert (env["FLOTILLA_WORKER"], env["FLOTILLA_TEAM"], env["FLOTILLA_ROLE"]) == (
            "w1",
            "crew",
            "worker",
        )
        token = env["FLOTILLA_TOKEN"]
        assert token != "the-creators-token"
        principal = Tokens(SECRET).verify(token)
        assert (principal.agent, principal.team, principal.role) == ("w1", "crew", Role.WORKER)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] in (TIMEOUT_S + TOKEN_MARGIN_S, TIMEOUT_S + 601)

        with served.client(token) as agent:  # the agent calls the API as itself
            assert agent.get("/health").status_code == 200
            refused = agent.post("/workers", json={**body, "name": "w2"})
        assert refused.status_code == 403
        assert "role 'worker' may not 'spawn'" in refused.json()["error"]

        fleet.wait_terminal("w1")
        saved = json.loads(next((fleet.home / "runs").glob("*/env.json")).read_text())
        assert "FLOTILLA_TOKEN" not in saved and saved["DUMP_DIR"] == str(dumping.dumps)
        _assert_kept_private(dumping, token, [served.output])
        _assert_kept_private(dumping, "the-creators-token", [served.output])


def test_a_team_member_gets_its_teams_role(tmp_path: Path) -> None:
    with dumping_fleet(tmp_path) as dumping, serving(dumping) as served:
        fleet = dumping.fleet
        with served.client(served.token()) as client:
            team = client.post("/teams", json={"name": "alpha", "project": str(fleet.repo)})
            assert team.status_code == 200, team.text
            spawn = {
                "name": "lead1",
                "prompt": "lead the team",
                "role": "team-lead",
                "env": dumping.request_env(),
            }
            spawned = client.post("/teams/alpha/spawn", json=spawn)
            assert spawned.status_code == 200, spawned.text
        env = dumping.env_of("lead1")
        assert (env["FLOTILLA_TEAM"], env["FLOTILLA_ROLE"]) == ("alpha", "team-lead")
        principal = Tokens(SECRET).verify(env["FLOTILLA_TOKEN"])
        assert (principal.agent, principal.team, principal.role) == (
            "lead1",
            "alpha",
            Role.TEAM_LEAD,
        )
        with served.client(env["FLOTILLA_TOKEN"]) as lead:  # a lead may spawn in its team
            child = {"name": "helper", "prompt": "help", "env": dumping.request_env()}
            assert lead.post("/teams/alpha/spawn", json=child).status_code == 200
        helper = dumping.env_of("helper")
        assert (helper["FLOTILLA_TEAM"], helper["FLOTILLA_ROLE"]) == ("alpha", "worker")
        fleet.wait_terminal("lead1", "helper")
        _assert_kept_private(dumping, env["FLOTILLA_TOKEN"], [served.output])


def test_without_tcp_an_agent_gets_the_socket_and_a_token_but_no_url(tmp_path: Path) -> None:
    with dumping_fleet(tmp_path) as dumping:
        fleet = dumping.fleet
        fleet.run("create", "solo", "-p", "dump your environment")  # the background daemon
        env = dumping.env_of("solo")
        assert "FLOTILLA_URL" not in env
        assert env["FLOTILLA_SOCKET"] == str(fleet.home / "daemon.sock")
        assert (env["FLOTILLA_WORKER"], env["FLOTILLA_TEAM"], env["FLOTILLA_ROLE"]) == (
            "solo",
            "default",
            "worker",
        )
        assert Tokens(SECRET).verify(env["FLOTILLA_TOKEN"]).agent == "solo"
        fleet.wait_terminal("solo")
        _assert_kept_private(dumping, env["FLOTILLA_TOKEN"], [])
