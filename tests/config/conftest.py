"""Fixtures of the config tests: an isolated environment and a repository folder per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment that points every Flotilla path into tmp_path (never the real home)."""
    return {
        "HOME": str(tmp_path / "home"),
        "FLOTILLA_HOME": str(tmp_path / "state"),
        "FLOTILLA_USER_CONFIG": str(tmp_path / "user" / "config.toml"),
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.fixture
def user_file(env: dict[str, str]) -> Path:
    return Path(env["FLOTILLA_USER_CONFIG"])


@pytest.fixture
def project_file(repo: Path) -> Path:
    return repo / ".flotilla" / "config.toml"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def write() -> Callable[[Path, str], Path]:
    """Write a text file, creating its folder."""
    return _write
