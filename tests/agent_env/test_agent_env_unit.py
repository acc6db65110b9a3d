"""What an agent is given to reach the fleet (orchestrator/agent_env.py), the env file
that must never hold a token, and the Claude adapter's `--mcp-config`, without a daemon."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import jwt
import pytest

from flotilla.config.errors import ConfigError
from flotilla.config.loader import load_config
from flotilla.domain.roles import Role
from flotilla.domain.worker import Worker
from flotilla.executors.base import AgentSettings, LaunchSpec
from flotilla.executors.claude import MCP_CONFIG_FILE, ClaudeExecutor
from flotilla.orchestrator.agent_env import (
    MAX_TOKEN_S,
    TOKEN_MARGIN_S,
    AgentAccess,
    identity_of,
    token_ttl,
    with_access,
)
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.orchestrator.turns import ENV_FILE, load_env, save_env
from flotilla.server.auth import Tokens

SECRET = "unit-secret-0123456789abcdef"


def _worker(**fields: object) -> Worker:
    base: dict[str, object] = {"id": "abc123", "name": "w1", "project": "/repo", "agent": "shell"}
    base.update(fields)
    return Worker(prompt="p", **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "memberships", "team", "role"),
    [
        ({}, [], "default", Role.WORKER),
        ({"batch": "crew"}, [], "crew", Role.WORKER),
        ({"batch": "crew", "settings": {"team": "alpha"}}, [], "alpha", Role.WORKER),
        ({}, [("beta", Role.TEAM_LEAD), ("alpha", Role.MONITOR)], "alpha", Role.MONITOR),
        (
            {"settings": {"team": "beta"}},
            [("beta", Role.TEAM_LEAD), ("alpha", Role.MONITOR)],
            "beta",
            Role.TEAM_LEAD,
        ),
    ],
)
def test_identity_comes_from_membership_else_a_worker_of_its_team(
    fields: dict[str, object], memberships: list[tuple[str, Role]], team: str, role: Role
) -> None:
    who = identity_of(_worker(**fields), memberships)
    assert (who.agent, who.team, who.role) == ("w1", team, role)


def test_the_token_names_the_agent_and_lives_for_its_timeout_plus_a_margin() -> None:
    tokens = Tokens(SECRET)
    access = AgentAccess(
        socket=Path("/state/daemon.sock"),
        url="http://127.0.0.1:8855",
        sign=tokens.issue,
        memberships=lambda worker: [("alpha", Role.TEAM_LEAD)],
    )
    before = time.time()
    env = access.env_for(_worker(), timeout_s=300)
    assert {k: v for k, v in env.items() if k != "FLOTILLA_TOKEN"} == {
        "FLOTILLA_URL": "http://127.0.0.1:8855",
        "FLOTILLA_SOCKET": "/state/daemon.sock",
        "FLOTILLA_WORKER": "w1",
        "FLOTILLA_TEAM": "alpha",
        "FLOTILLA_ROLE": "team-lead",
    }
    principal = tokens.verify(env["FLOTILLA_TOKEN"])
    assert (principal.agent, principal.team, principal.role) == ("w1", "alpha", Role.TEAM_LEAD)
    claims = jwt.decode(env["FLOTILLA_TOKEN"], options={"verify_signature": False})
    assert before + 300 + TOKEN_MARGIN_S <= claims["exp"] <= time.time() + 300 + TOKEN_MARGIN_S + 1
    assert access.env_for(_worker(), 300)["FLOTILLA_TOKEN"] != env["FLOTILLA_TOKEN"]  # per turn


def test_without_tcp_or_a_secret_there_is_no_url_and_no_token() -> None:
    env = AgentAccess(socket=Path("/s.sock")).env_for(_worker(), timeout_s=60)
    assert "FLOTILLA_URL" not in env and "FLOTILLA_TOKEN" not in env
    assert env["FLOTILLA_SOCKET"] == "/s.sock" and env["FLOTILLA_ROLE"] == "worker"


def test_token_lifetimes_are_bounded() -> None:
    assert token_ttl(0.5) == 601
    assert token_ttl(10 * 365 * 24 * 3600) == MAX_TOKEN_S


def test_a_creators_token_and_access_are_never_inherited() -> None:
    saved = {
        "PATH": "/bin",
        "FLOTILLA_TOKEN": "parents-token",
        "FLOTILLA_ROLE": "coordinator",
        "FLOTILLA_URL": "http://127.0.0.1:1",
        "FLOTILLA_TEAM": "elsewhere",
    }
    assert with_access(saved, _worker(), 60, None) == {
        k: v for k, v in saved.items() if k != "FLOTILLA_TOKEN"
    }
    access = AgentAccess(socket=Path("/s.sock"), sign=Tokens(SECRET).issue)
    env = with_access(saved, _worker(), 60, access)
    assert env["PATH"] == "/bin"
    assert "FLOTILLA_URL" not in env  # this daemon serves no TCP
    assert (env["FLOTILLA_ROLE"], env["FLOTILLA_TEAM"]) == ("worker", "default")
    assert Tokens(SECRET).verify(env["FLOTILLA_TOKEN"]).role is Role.WORKER


def test_the_env_file_is_private_and_holds_no_token(tmp_path: Path) -> None:
    save_env(tmp_path, {"PATH": "/bin", "ANTHROPIC_API_KEY": "k", "FLOTILLA_TOKEN": "secret.jwt"})
    path = tmp_path / ENV_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "secret.jwt" not in path.read_text()
    assert load_env(tmp_path) == {"PATH": "/bin", "ANTHROPIC_API_KEY": "k"}


# -- the Claude adapter: the fleet's MCP server ------------------------------------------------


def _spec(tmp_path: Path, mcp: bool, resume: bool = False) -> LaunchSpec:
    return LaunchSpec(
        prompt="fix it",
        worktree=tmp_path / "wt",
        run_dir=tmp_path / "run",
        settings=AgentSettings(mcp=mcp),
        session_id="5d3a7c1e-2f4b-4e8a-9c61-0b7d2e9f4a10",
        resume=resume,
    )


@pytest.mark.parametrize("mode", ["headless", "interactive", "resume"])
def test_with_mcp_claude_gets_a_config_naming_fleet_mcp(tmp_path: Path, mode: str) -> None:
    executor = ClaudeExecutor()
    spec = _spec(tmp_path, mcp=True, resume=mode == "resume")
    command = executor.interactive(spec) if mode == "interactive" else executor.headless(spec)
    argv = command.argv
    at = argv.index("--mcp-config")
    path = Path(argv[at + 1])
    assert path == tmp_path / "run" / MCP_CONFIG_FILE
    assert "--strict-mcp-config" not in argv  # the user's own MCP servers stay
    if mode != "interactive":
        assert argv.index("-p") < at  # a flag among flags, never taken for the prompt
    document = json.loads(path.read_text())
    server = document["mcpServers"]["flotilla"]
    assert server["type"] == "stdio"
    assert server["command"] == sys.executable and os.access(server["command"], os.X_OK)
    assert server["args"] == ["-P", "-m", "flotilla.cli", "mcp"]
    assert server["env"]["FLOTILLA_TOKEN"] == "${FLOTILLA_TOKEN:-}"  # expanded by Claude
    assert server["env"]["FLOTILLA_URL"] == "${FLOTILLA_URL:-}"
    assert all(v == "${" + k + ":-}" for k, v in server["env"].items())


def test_without_mcp_there_is_no_mcp_config(tmp_path: Path) -> None:
    argv = ClaudeExecutor().headless(_spec(tmp_path, mcp=False)).argv
    assert "--mcp-config" not in argv
    assert not (tmp_path / "run" / MCP_CONFIG_FILE).exists()


@pytest.mark.parametrize(
    ("toml", "claude", "codex"),
    [
        ("", False, False),
        ("[agents.claude]\nmcp = true\n", True, False),
        ("[mcp]\ngive_agents = true\n", True, True),
        ("[mcp]\ngive_agents = true\n\n[agents.codex]\nmcp = false\n", True, False),
    ],
)
def test_the_mcp_option_of_the_project_config(
    tmp_path: Path, toml: str, claude: bool, codex: bool
) -> None:
    (tmp_path / ".flotilla").mkdir()
    (tmp_path / ".flotilla" / "config.toml").write_text(toml)
    env = {"FLOTILLA_USER_CONFIG": str(tmp_path / "none.toml"), "HOME": str(tmp_path)}
    config = load_config(tmp_path, env).config
    assert config.agent_settings("claude").mcp is claude
    assert config.agent_settings("codex").mcp is codex
    settings = RunSettings(agent=config.agent_settings("claude"))
    assert RunSettings.from_dict(settings.to_dict()).agent.mcp is claude  # kept on the worker
    assert RunSettings.from_dict({}).agent.mcp is False  # workers stored before the option


def test_a_misspelled_mcp_option_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".flotilla").mkdir()
    (tmp_path / ".flotilla" / "config.toml").write_text('[mcp]\ngive_agent = "yes"\n')
    env = {"FLOTILLA_USER_CONFIG": str(tmp_path / "none.toml"), "HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match="give_agent"):
        load_config(tmp_path, env)
