"""Merge order (default < user < project < env) and the origin of every value."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from flotilla.config import ConfigError, load_config, render_config
from flotilla.config.schema import Config
from flotilla.executors.base import AgentSettings
from flotilla.executors.pricing import DEFAULT_PRICES, Price

Write = Callable[[Path, str], Path]


def test_no_files_gives_defaults_with_default_origin(repo: Path, env: dict[str, str]) -> None:
    loaded = load_config(repo, env)
    assert loaded.config == Config()
    assert loaded.files == ()
    assert loaded.config.limits.max_concurrent == 4
    assert {origin for _, _, origin in loaded.items_with_origin()} == {"default"}


def test_each_layer_overrides_the_one_below(
    repo: Path, env: dict[str, str], user_file: Path, project_file: Path, write: Write
) -> None:
    write(user_file, "[limits]\nmax_concurrent = 6\ntimeout_s = 100\nstale_timeout_s = 60\n")
    write(project_file, "[limits]\nmax_concurrent = 8\ntimeout_s = 200\n")
    env["FLOTILLA_LIMITS__MAX_CONCURRENT"] = "10"

    loaded = load_config(repo, env)

    limits = loaded.config.limits
    assert (limits.max_concurrent, limits.timeout_s, limits.stale_timeout_s) == (10, 200, 60)
    assert loaded.origin("limits.max_concurrent") == "env FLOTILLA_LIMITS__MAX_CONCURRENT"
    assert loaded.origin("limits.timeout_s") == str(project_file)
    assert loaded.origin("limits.stale_timeout_s") == str(user_file)
    assert loaded.origin("limits.max_restarts") == "default"
    assert loaded.files == (user_file, project_file)


def test_tables_merge_key_by_key_and_arrays_replace(
    repo: Path, env: dict[str, str], user_file: Path, project_file: Path, write: Write
) -> None:
    write(
        user_file,
        '[agents.claude]\nmodel = "opus"\nextra_flags = ["--a"]\nenv = { A = "1" }\n'
        '[prices."gpt-5.5"]\ninput_per_mtok = 1.25\n',
    )
    write(
        project_file,
        '[agents.claude]\nextra_flags = ["--b"]\n[agents.claude.env]\nB = "2"\n'
        '[prices."gpt-5.5"]\noutput_per_mtok = 10\n',
    )

    loaded = load_config(repo, env)

    claude = loaded.config.agents["claude"]
    assert claude.model == "opus"
    assert claude.extra_flags == ["--b"]
    assert claude.env == {"A": "1", "B": "2"}
    price = loaded.config.prices["gpt-5.5"]  # required keys may come from two files
    assert (price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok) == (
        1.25,
        10.0,
        None,
    )
    assert loaded.origin("agents.claude.env.A") == str(user_file)
    assert loaded.origin(("agents", "claude", "env", "B")) == str(project_file)
    assert loaded.origin('prices."gpt-5.5".input_per_mtok') == str(user_file)
    assert loaded.origin('prices."gpt-5.5".cached_input_per_mtok') == "default"
    prices = loaded.prices()  # DEFAULT_PRICES with the configured ones on top
    assert prices["gpt-5.5"] == Price(1.25, 10.0, None)
    assert prices["gpt-5"] == DEFAULT_PRICES["gpt-5"]
    # A table reports its most recently set value.
    assert loaded.origin("agents.claude") == str(project_file)


def test_user_file_location_follows_xdg_when_not_overridden(
    repo: Path, tmp_path: Path, write: Write
) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    user = write(tmp_path / "xdg" / "flotilla" / "config.toml", "[retry]\nmax_retries = 9\n")
    loaded = load_config(repo, env)
    assert loaded.config.retry.max_retries == 9
    assert loaded.origin("retry.max_retries") == str(user)

    del env["XDG_CONFIG_HOME"]
    home_user = write(tmp_path / "home" / ".config" / "flotilla" / "config.toml", "")
    assert load_config(repo, env).files == (home_user,)


def test_without_repo_only_user_file_and_env(
    env: dict[str, str], user_file: Path, write: Write
) -> None:
    write(user_file, '[project]\ndefault_agent = "gemini"\n')
    loaded = load_config(None, env)
    assert loaded.config.project.default_agent == "gemini"
    assert loaded.repo is None
    assert loaded.worktree_root is None


def test_items_with_origin_lists_every_leaf(
    repo: Path, env: dict[str, str], project_file: Path, write: Write
) -> None:
    write(project_file, '[agents.shell]\ncommand = "make test"\n')
    items = {
        key: (value, origin) for key, value, origin in load_config(repo, env).items_with_origin()
    }
    assert items["agents.shell.command"] == ("make test", str(project_file))
    assert items["agents.shell.binary"] == (None, "default")
    assert items["retry.jitter"] == (0.2, "default")
    assert items["store.url"] == ("", "default")
    assert "prices" in items  # an empty table is still listed


def test_origin_of_an_unknown_key_is_a_usage_error(repo: Path, env: dict[str, str]) -> None:
    loaded = load_config(repo, env)
    with pytest.raises(ConfigError, match=r"unknown configuration key 'limits\.nope'"):
        loaded.origin("limits.nope")


def test_agent_settings_and_unknown_kinds(
    repo: Path, env: dict[str, str], project_file: Path, write: Write
) -> None:
    write(
        project_file,
        '[project]\ndefault_agent = "robot"\n'
        '[agents.claude]\nbinary = "/opt/claude"\nextra_flags = ["--x"]\nenv = { K = "v" }\n'
        "[agents.mystery]\n",
    )
    config = load_config(repo, env).config
    assert config.agent_settings("claude") == AgentSettings(
        binary="/opt/claude", extra_flags=("--x",), env={"K": "v"}
    )
    assert config.agent_settings("codex") == AgentSettings()
    assert config.unknown_agent_kinds({"claude", "codex"}) == ["mystery", "robot"]


def test_resolved_worktree_root_and_database_url(
    repo: Path, env: dict[str, str], project_file: Path, write: Write
) -> None:
    loaded = load_config(repo, env)
    assert loaded.worktree_root is not None
    assert loaded.worktree_root.is_relative_to(Path(env["FLOTILLA_HOME"]))
    assert loaded.database_url == f"sqlite:///{env['FLOTILLA_HOME']}/flotilla.db"

    write(project_file, '[project]\nworktree_root = "../trees"\n')
    env["FLOTILLA_DATABASE_URL"] = "postgresql://127.0.0.1/test"
    loaded = load_config(repo, env)
    assert loaded.worktree_root == repo / ".." / "trees"
    assert loaded.database_url == "postgresql://127.0.0.1/test"
    assert loaded.origin("store.url") == "env FLOTILLA_DATABASE_URL"


def test_database_url_env_wins_over_store_url(
    repo: Path, env: dict[str, str], project_file: Path, write: Write
) -> None:
    write(project_file, '[store]\nurl = "sqlite:///elsewhere.db"\n')
    env["FLOTILLA_STORE__URL"] = "postgresql://a/b"
    assert load_config(repo, env).database_url == "postgresql://a/b"
    env["FLOTILLA_DATABASE_URL"] = "postgresql://c/d"
    assert load_config(repo, env).database_url == "postgresql://c/d"


def test_allowed_repositories(
    env: dict[str, str], tmp_path: Path, user_file: Path, write: Write
) -> None:
    write(user_file, f'[project]\nallowed_repositories = ["{tmp_path}/src/*"]\n')
    project = load_config(None, env).config.project
    assert project.allows_repository(tmp_path / "src" / "app")
    assert not project.allows_repository(tmp_path / "other" / "app")
    unrestricted = load_config(None, {**env, "FLOTILLA_USER_CONFIG": "/dev/null"}).config
    assert unrestricted.project.allows_repository(tmp_path / "other")


def test_render_is_toml_that_parses_back_to_the_values(
    repo: Path, env: dict[str, str], user_file: Path, project_file: Path, write: Write
) -> None:
    write(user_file, '[agents.claude]\nmodel = "opus"\nenv = { "weird key" = "a\\"b\\n" }\n')
    write(project_file, '[prices."gpt-5.5"]\ninput_per_mtok = 1\noutput_per_mtok = 2.5\n')
    env["FLOTILLA_PROJECT__SETUP_COMMANDS"] = '["make deps", "echo \'hi\'"]'
    loaded = load_config(repo, env)

    for show_origin in (False, True):
        text = render_config(loaded, show_origin=show_origin)
        parsed = tomllib.loads(text)
        assert Config.model_validate(parsed) == loaded.config

    with_origin = render_config(loaded, show_origin=True)
    assert re.search(rf'^model = "opus" +# {re.escape(str(user_file))}$', with_origin, re.M)
    assert "# env FLOTILLA_PROJECT__SETUP_COMMANDS" in with_origin
    assert "[agents]" not in with_origin  # only [agents.claude]


def test_render_shows_empty_tables(repo: Path, env: dict[str, str]) -> None:
    parsed = tomllib.loads(render_config(load_config(repo, env)))
    assert parsed["agents"] == {} and parsed["prices"] == {}


def test_to_dict(repo: Path, env: dict[str, str], project_file: Path, write: Write) -> None:
    write(project_file, "[limits]\nmax_concurrent = 2\n")
    loaded = load_config(repo, env)
    assert loaded.to_dict()["limits"]["max_concurrent"] == 2
    full = loaded.to_dict(show_origin=True)
    assert full["values"] == loaded.to_dict()
    assert full["origins"]["limits.max_concurrent"] == str(project_file)
    assert full["files"] == [str(project_file)]
