"""Bad configuration: every message names the key and the file (or variable) it came from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flotilla.config import ConfigError, load_config, validate_config
from flotilla.domain.errors import UsageError

Write = Callable[[Path, str], Path]


def _load_error(repo: Path | None, env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(repo, env)
    return caught.value


def test_constraint_names_key_and_file(
    repo: Path, env: dict[str, str], project_file: Path, write: Write
) -> None:
    write(project_file, "[limits]\nmax_concurrent = 0\n")
    error = _load_error(repo, env)
    assert str(error) == f"limits.max_concurrent must be >= 1 (in {project_file})"
    assert isinstance(error, UsageError) and error.exit_code == 2


def test_unknown_key_names_key_and_file_with_a_suggestion(
    repo: Path, env: dict[str, str], project_file: Path, write: Write
) -> None:
    write(project_file, "[limits]\nmax_concurent = 3\n")
    assert str(_load_error(repo, env)) == (
        f"unknown key 'limits.max_concurent' in {project_file};"
        " did you mean 'limits.max_concurrent'?"
    )


def test_unknown_section_and_agent_key(
    repo: Path, env: dict[str, str], user_file: Path, write: Write
) -> None:
    write(user_file, '[limitz]\nx = 1\n[agents.claude]\nmodle = "opus"\n')
    assert sorted(validate_config(repo, env)) == [
        f"unknown key 'agents.claude.modle' in {user_file}; did you mean 'agents.claude.model'?",
        f"unknown key 'limitz' in {user_file}; did you mean 'limits'?",
    ]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[limits]\ntimeout_s = "x"', "limits.timeout_s must be a number, got a string ('x')"),
        ("[limits]\ntimeout_s = 0.01", "limits.timeout_s must be >= 0.1"),
        ("[limits]\nmax_restarts = true", "limits.max_restarts must be an integer, got a boolean"),
        ("[project]\nbase_ref = 3", "project.base_ref must be a string, got an integer (3)"),
        ('[project]\nsetup_commands = "make"', "project.setup_commands must be an array"),
        ("[project]\nsetup_commands = [1]", "project.setup_commands[0] must be a string"),
        ("limits = 5", "limits must be a table, got an integer (5)"),
        ("[retry]\njitter = 1.5", "retry.jitter must be <= 1"),
        ('[project]\ndefault_agent = ""', "project.default_agent must not be empty"),
        ('[project]\nbranch_prefix = "a..b"', "project.branch_prefix must be a valid git branch"),
        ('[store]\nurl = "nonsense"', "store.url must be a database URL"),
        ('[project]\ncredential_files = ["/etc/passwd"]', "project.credential_files entries must"),
        ("[agents.claude]\nenv = { A = 1 }", "agents.claude.env.A must be a string"),
        ('[prices."m.1"]\ninput_per_mtok = 1', 'prices."m.1".output_per_mtok is required'),
        (
            '[prices."m"]\ninput_per_mtok = -1\noutput_per_mtok = 1',
            "prices.m.input_per_mtok must be >= 0",
        ),
    ],
)
def test_wrong_values_name_key_and_file(
    repo: Path, env: dict[str, str], project_file: Path, write: Write, toml: str, expected: str
) -> None:
    write(project_file, toml + "\n")
    (problem,) = validate_config(repo, env)
    assert problem.startswith(expected), problem
    assert problem.endswith(f"(in {project_file})"), problem


def test_validate_reports_every_problem_of_every_source(
    repo: Path, env: dict[str, str], user_file: Path, project_file: Path, write: Write
) -> None:
    # The user's bad max_concurrent is hidden by the project's valid one: still reported.
    write(user_file, "[limits]\nmax_concurrent = 0\nstale_timeout_s = -1\n")
    write(project_file, '[limits]\nmax_concurrent = 4\n[retry]\nmax_retries = "x"\nbogus = 1\n')
    env["FLOTILLA_LIMITS__TIMEOUT_S"] = "0"
    env["FLOTILLA_NOPE__KEY"] = "1"

    problems = validate_config(repo, env)

    assert problems == [
        f"limits.max_concurrent must be >= 1 (in {user_file})",
        f"limits.stale_timeout_s must be >= 0.1 (in {user_file})",
        f"retry.max_retries must be an integer, got a string ('x') (in {project_file})",
        f"unknown key 'retry.bogus' in {project_file}",
        "limits.timeout_s must be >= 0.1 (in env FLOTILLA_LIMITS__TIMEOUT_S)",
        "unknown key 'nope' in env FLOTILLA_NOPE__KEY",
    ]
    error = _load_error(repo, env)
    assert error.problems == problems
    assert str(error) == problems[0] + " (and 5 more problems)"


def test_valid_config_validates_clean(
    repo: Path, env: dict[str, str], project_file: Path, write: Write
) -> None:
    write(project_file, "[limits]\nmax_concurrent = 2\n")
    assert validate_config(repo, env) == []


def test_toml_syntax_error_gives_file_line_and_column(
    repo: Path, env: dict[str, str], user_file: Path, project_file: Path, write: Write
) -> None:
    write(project_file, "[limits]\nmax_concurrent = 2\ntimeout_s = \n")
    write(user_file, "[retry]\nmax_retries = 0\n")
    assert str(_load_error(repo, env)) == (
        f"invalid TOML in {project_file} at line 3, column 13: Invalid value"
    )
    write(user_file, 'x = "unterminated\n')
    problems = validate_config(repo, env)
    assert problems[0].startswith(f"invalid TOML in {user_file} at line 1, column 18")
    assert problems[1].startswith(f"invalid TOML in {project_file} at line 3")


def test_syntax_error_at_end_of_file_still_has_a_position(
    repo: Path, env: dict[str, str], project_file: Path, write: Write
) -> None:
    write(project_file, '[project]\nbase_ref = "ma')
    (problem,) = validate_config(repo, env)
    assert problem == (
        f"invalid TOML in {project_file} at line 2, column 15 (end of file): Unterminated string"
    )


def test_unreadable_and_non_utf8_files(
    repo: Path, env: dict[str, str], user_file: Path, project_file: Path
) -> None:
    user_file.mkdir(parents=True)  # a folder where the file should be
    project_file.parent.mkdir()
    project_file.write_bytes(b"[project]\nbase_ref = '\xff'\n")
    problems = validate_config(repo, env)
    assert problems[0].startswith(f"cannot read {user_file}: ")
    assert problems[1] == f"{project_file} is not UTF-8 text (line 2)"


def test_cross_field_problem_blames_the_file_that_set_it(
    repo: Path, env: dict[str, str], user_file: Path, write: Write
) -> None:
    write(user_file, "[retry]\nbase_delay_s = 400\n")
    assert validate_config(repo, env) == [
        f"retry.max_delay_s must be >= retry.base_delay_s (400.0), got 300.0 (in {user_file})"
    ]


def test_project_file_cannot_widen_allowed_repositories(
    repo: Path, env: dict[str, str], user_file: Path, project_file: Path, write: Write
) -> None:
    write(user_file, '[project]\nallowed_repositories = ["/home/me/*"]\n')
    assert validate_config(repo, env) == []
    write(project_file, '[project]\nallowed_repositories = ["/"]\n')
    assert validate_config(repo, env) == [
        "project.allowed_repositories may only be set in the user config file or the"
        f" environment, not in a project file (in {project_file})"
    ]


def test_relative_allowed_repository_is_refused(
    env: dict[str, str], user_file: Path, write: Write
) -> None:
    write(user_file, '[project]\nallowed_repositories = ["src/*"]\n')
    (problem,) = validate_config(None, env)
    assert problem.startswith("project.allowed_repositories entries must be absolute")
