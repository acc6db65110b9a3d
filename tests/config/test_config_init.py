"""`init_project`: a commented, valid `.flotilla/config.toml` for the detected project type."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from flotilla.config import ConfigError, init_project, load_config
from flotilla.config.init import render_project_file
from flotilla.config.loader import USER_ONLY_KEYS

ENV = {"FLOTILLA_USER_CONFIG": "/dev/null", "FLOTILLA_HOME": "/nonexistent/flotilla"}

MARKERS: dict[str, dict[str, str]] = {
    "python": {"pyproject.toml": '[project]\nname = "demo"\nversion = "0.1.0"\n'},
    "node": {"package.json": '{"name": "demo", "scripts": {"test": "jest"}}\n'},
    "generic": {"README.md": "# demo\n"},
    "rails": {
        "Gemfile": 'source "https://rubygems.org"\ngem "rails", "~> 7.1"\n',
        "Gemfile.lock": "GEM\n  specs:\n    rails (7.1.3)\n",
        "config/application.rb": "require 'rails/all'\n",
        "bin/rails": "#!/usr/bin/env ruby\n",
    },
}


def _make(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)


@pytest.mark.parametrize("kind", [*sorted(MARKERS), "generic"])
def test_init_writes_the_defaults_of_the_detected_type(repo: Path, kind: str) -> None:
    from flotilla.workspace.project_type import defaults_for

    _make(repo, MARKERS[kind])
    path = init_project(repo)

    assert path == repo / ".flotilla" / "config.toml"
    text = path.read_text()
    assert text.startswith("# Flotilla project configuration")
    project = load_config(repo, ENV).config.project
    defaults = defaults_for(kind, repo)
    assert project.project_type == kind
    assert project.setup_commands == list(defaults["setup_commands"])
    assert project.quick_setup == list(defaults["quick_setup"])
    assert project.test_command == (defaults["test_command"] or "")
    assert project.credential_files == list(defaults["credential_files"])


def test_init_with_an_explicit_type(repo: Path) -> None:
    _make(repo, MARKERS["node"])
    init_project(repo, project_type="python")
    assert load_config(repo, ENV).config.project.project_type == "python"


def test_init_refuses_to_overwrite_unless_forced(repo: Path) -> None:
    path = init_project(repo)
    path.write_text("# mine\n")
    with pytest.raises(ConfigError, match=r"config\.toml already exists: edit it, or pass --force"):
        init_project(repo)
    assert path.read_text() == "# mine\n"
    init_project(repo, force=True)
    assert path.read_text().startswith("# Flotilla project configuration")


def test_init_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        init_project(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_project_file_carries_given_defaults_and_commented_limits() -> None:
    text = render_project_file(
        "custom",
        {
            "setup_commands": ["make deps", 'echo "ok"'],
            "quick_setup": ["make quick"],
            "test_command": "make test",
            "credential_files": [".env"],
        },
    )
    data = tomllib.loads(text)
    assert data["project"] == {
        "project_type": "custom",
        "default_agent": "claude",
        "setup_commands": ["make deps", 'echo "ok"'],
        "quick_setup": ["make quick"],
        "test_command": "make test",
        "credential_files": [".env"],
    }
    assert data["limits"] == {} and data["retry"] == {}  # present, all commented defaults
    assert "# max_concurrent = 4" in text
    assert "# jitter = 0.2" in text
    for path in USER_ONLY_KEYS:
        assert path[-1] not in text
