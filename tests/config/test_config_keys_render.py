"""Dotted keys and the TOML text of `fleet config`, checked against tomllib."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.config import ConfigError, load_config, render_config
from flotilla.config.keys import format_key, parse_key
from flotilla.config.render import toml_value
from flotilla.config.schema import Config

TEXT = st.text(alphabet=st.characters(codec="utf-8"))


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("limits.max_concurrent", ("limits", "max_concurrent")),
        ('prices."gpt-5.5".input_per_mtok', ("prices", "gpt-5.5", "input_per_mtok")),
        ('agents.claude.env."A\\tB"', ("agents", "claude", "env", "A\tB")),
        (" limits . timeout_s ", ("limits", "timeout_s")),
    ],
)
def test_parse_key(key: str, path: tuple[str, ...]) -> None:
    assert parse_key(key) == path


@pytest.mark.parametrize("key", ["", "limits.", ".x", "a b", 'x."unterminated', "a = 1"])
def test_malformed_keys(key: str) -> None:
    with pytest.raises(ConfigError, match="malformed configuration key"):
        parse_key(key)


@given(st.lists(TEXT, min_size=1, max_size=4))
def test_key_round_trip(path: list[str]) -> None:
    assert parse_key(format_key(tuple(path))) == tuple(path)


@given(TEXT)
def test_toml_string_is_what_tomllib_reads(text: str) -> None:
    assert tomllib.loads(f"v = {toml_value(text)}")["v"] == text


@settings(max_examples=40, deadline=None)
@given(
    command=TEXT,
    setup=st.lists(TEXT, max_size=3),
    agent_env=st.dictionaries(TEXT, TEXT, max_size=3),
    model=st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
    price=st.floats(min_value=0, max_value=1e6),
)
def test_rendered_config_parses_back(
    tmp_path_factory: pytest.TempPathFactory,
    command: str,
    setup: list[str],
    agent_env: dict[str, str],
    model: str,
    price: float,
) -> None:
    repo = tmp_path_factory.mktemp("repo")
    text = (
        f"[project]\ntest_command = {toml_value(command)}\nsetup_commands = {toml_value(setup)}\n"
        f"[agents.claude]\nenv = {toml_value(agent_env)}\n"
        f"[prices.{format_key((model,))}]\ninput_per_mtok = {toml_value(price)}\n"
        "output_per_mtok = 1\n"
    )
    (repo / ".flotilla").mkdir()
    (repo / ".flotilla" / "config.toml").write_text(text, encoding="utf-8")
    loaded = load_config(repo, {"FLOTILLA_USER_CONFIG": "/dev/null", "FLOTILLA_HOME": str(repo)})
    assert loaded.config.project.test_command == command
    assert loaded.config.agents["claude"].env == agent_env
    assert loaded.config.prices[model].input_per_mtok == price
    for show_origin in (False, True):
        rendered = render_config(loaded, show_origin=show_origin)
        assert Config.model_validate(tomllib.loads(rendered)) == loaded.config


def test_toml_value_refuses_unknown_types(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        toml_value(tmp_path)
