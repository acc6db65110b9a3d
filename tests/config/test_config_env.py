"""FLOTILLA_<SECTION>__<KEY> variables: parsing, precedence and round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla.config import ConfigError, load_config, validate_config
from flotilla.config.render import toml_value
from flotilla.config.schema import Config
from flotilla.config.sources import parse_env_value

BASE = {"FLOTILLA_USER_CONFIG": "/dev/null", "FLOTILLA_HOME": "/nonexistent/flotilla"}
TEXT = st.text(alphabet=st.characters(codec="utf-8"))


def _load(**variables: str) -> Config:
    return load_config(None, {**BASE, **variables}).config


def test_examples_from_the_docs() -> None:
    loaded = load_config(
        None,
        {
            **BASE,
            "FLOTILLA_LIMITS__MAX_CONCURRENT": "8",
            "FLOTILLA_PROJECT__DEFAULT_AGENT": "codex",
        },
    )
    assert loaded.config.limits.max_concurrent == 8
    assert loaded.config.project.default_agent == "codex"
    assert loaded.origin("project.default_agent") == "env FLOTILLA_PROJECT__DEFAULT_AGENT"


def test_values_are_toml_when_they_parse_as_toml() -> None:
    loaded = load_config(
        None,
        {
            **BASE,
            "FLOTILLA_PROJECT__SETUP_COMMANDS": '["make deps", "npm ci"]',
            "FLOTILLA_RETRY__BASE_DELAY_S": "2",
            "FLOTILLA_RETRY__JITTER": "0.5",
            "FLOTILLA_AGENTS__CLAUDE__EXTRA_FLAGS": '["--verbose"]',
            "FLOTILLA_AGENTS__CLAUDE__ENV": '{ A = "1" }',
        },
    )
    config = loaded.config
    assert config.project.setup_commands == ["make deps", "npm ci"]
    assert config.retry.base_delay_s == 2.0
    assert config.retry.jitter == 0.5
    assert config.agents["claude"].extra_flags == ["--verbose"]
    assert config.agents["claude"].env == {"A": "1"}


def test_string_settings_keep_text_that_looks_like_other_types() -> None:
    loaded = load_config(
        None,
        {
            **BASE,
            "FLOTILLA_PROJECT__BASE_REF": "1234",
            "FLOTILLA_PROJECT__TEST_COMMAND": "true",
            "FLOTILLA_AGENTS__GEMINI__MODEL": "[not, toml]",
            "FLOTILLA_PROJECT__BRANCH_PREFIX": '"quoted"',
        },
    )
    project = loaded.config.project
    assert project.base_ref == "1234"
    assert project.test_command == "true"
    assert project.branch_prefix == "quoted"  # a quoted TOML string is unquoted
    assert loaded.config.agents["gemini"].model == "[not, toml]"


def test_agent_env_names_keep_their_case() -> None:
    loaded = load_config(None, {**BASE, "FLOTILLA_AGENTS__Claude__ENV__My__Var": "x"})
    assert loaded.config.agents["claude"].env == {"My__Var": "x"}
    assert loaded.origin(("agents", "claude", "env", "My__Var")) == (
        "env FLOTILLA_AGENTS__Claude__ENV__My__Var"
    )


def test_other_flotilla_variables_are_not_settings() -> None:
    loaded = load_config(None, {**BASE, "FLOTILLA_TOKEN": "x", "FLOTILLA_DEBUG": "1"})
    assert {origin for _, _, origin in loaded.items_with_origin()} == {"default"}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("FLOTILLA_LIMITS____X", "1", "malformed variable name FLOTILLA_LIMITS____X"),
        ("FLOTILLA_LIMITS__", "1", "malformed variable name FLOTILLA_LIMITS__"),
        ("FLOTILLA_LIMITS__MAX_CONCURRENT", "eight", "limits.max_concurrent must be an integer"),
        ("FLOTILLA_LIMITS__MAX_CONCURRENT", "3\nmax_restarts = 9", "limits.max_concurrent must"),
        ("FLOTILLA_PROJECT__SETUP_COMMANDS", "make", "project.setup_commands must be an array"),
        ("FLOTILLA_LIMIT__TIMEOUT_S", "5", "unknown key 'limit' in env FLOTILLA_LIMIT__TIMEOUT_S"),
    ],
)
def test_bad_variables_are_named(name: str, value: str, expected: str) -> None:
    (problem,) = validate_config(None, {**BASE, name: value})
    assert problem.startswith(expected), problem
    assert name in problem


def test_env_overrides_files(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text("[limits]\nmax_concurrent = 0\n")  # bad, but the env does not hide it
    with pytest.raises(ConfigError, match=f"in {user}"):
        load_config(
            None,
            {**BASE, "FLOTILLA_USER_CONFIG": str(user), "FLOTILLA_LIMITS__MAX_CONCURRENT": "2"},
        )


@given(st.integers(min_value=1, max_value=2**62))
def test_integer_round_trip(number: int) -> None:
    config = load_config(None, {**BASE, "FLOTILLA_LIMITS__MAX_CONCURRENT": str(number)}).config
    assert config.limits.max_concurrent == number


@given(st.floats(min_value=0, max_value=1))
def test_float_round_trip(number: float) -> None:
    assert _load(FLOTILLA_RETRY__JITTER=repr(number)).retry.jitter == number


@given(TEXT)
def test_raw_string_round_trip(text: str) -> None:
    if text.lstrip().startswith(("'", '"')):
        return  # quoted TOML strings are unquoted: covered by the next test
    assert parse_env_value(text, ("project", "test_command")) == text


@given(TEXT)
def test_quoted_string_round_trip(text: str) -> None:
    assert parse_env_value(toml_value(text), ("project", "test_command")) == text


@given(st.lists(TEXT, max_size=5))
def test_array_round_trip(items: list[str]) -> None:
    config = load_config(None, {**BASE, "FLOTILLA_PROJECT__QUICK_SETUP": toml_value(items)}).config
    assert config.project.quick_setup == items
